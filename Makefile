# Two commands on a fresh machine: `make demo` (the system in the local cloud) and `make test`.
# Both build their own virtual environment first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml layers/shared/python/requirements.txt | cksum | cut -d' ' -f1)

export TZ := UTC
export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled

.PHONY: venv test demo bench faults fuzz lint package clean lock-packs archive-pack

venv: $(STAMP)

$(STAMP): pyproject.toml layers/shared/python/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

test: venv lint package
	$(PY) -m pytest $(PYTEST_ARGS)

# The deployable artifacts, built by aws-sam-cli itself (its own virtual environment: its pins are not ours)
# for this machine's Python and CPU; tests/package imports every handler from them alone.
SAM_VENV := .venv-sam
SAM      := $(SAM_VENV)/bin/sam

$(SAM):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==1.170.0

package: venv $(SAM)
	$(PY) tools/package.py $(SAM)

demo: venv
	$(VENV)/bin/medspa demo

bench: venv
	$(PY) benchmarks/cold_import.py
	$(PY) benchmarks/lifecycle_paths.py
	$(PY) benchmarks/membership_drafts.py
	$(PY) benchmarks/outbox_drain.py
	$(PY) benchmarks/local_cloud.py
	$(PY) benchmarks/backtest.py

# The pure layers and the services (written against ports, so the adapters are not pulled in) are type-checked strictly.
lint: venv
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/ruff check layers functions infra tests tools benchmarks
	$(VENV)/bin/mypy --strict -p medspa.money -p medspa.policy -p medspa.domain -p medspa.events -p medspa.messages -p medspa.ports -p medspa.services
	$(PY) tools/apply_retry_policies.py --check

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .hypothesis

faults: venv
	MEDSPA_FAULT_TRIALS=1000 $(PY) -m pytest tests/e2e/test_fault_injection.py -q -s
	MEDSPA_MEMBERSHIP_FAULT_TRIALS=500 $(PY) -m pytest tests/e2e/test_membership_faults.py -q -s

# Hostile input: 10,000 events at the parser and a few hundred through the real intake; prints the figures.
fuzz: venv
	MEDSPA_FUZZ_EVENTS=10000 $(PY) -m pytest tests/unit/test_event_fuzz.py tests/e2e/test_hostile_intake.py -q -s -p no:cacheprovider

# A pack's published versions are immutable (medspa/policy/versions.py). Before editing a pack:
# `make archive-pack LOCATION=bijoux`; after giving it a new policy_version: `make lock-packs`.
archive-pack: venv
	$(PY) -m medspa.policy.versions archive $(LOCATION)

lock-packs: venv
	$(PY) -m medspa.policy.versions lock
