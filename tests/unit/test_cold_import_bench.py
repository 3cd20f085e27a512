"""The cold-import bench's helpers: every handler gets the environment template.yaml gives it, resolved."""

from __future__ import annotations

from benchmarks.cold_import import ROOT, _median_seconds, function_environments


def test_every_handler_has_its_environment_resolved() -> None:
    environments = function_environments()
    assert set(environments) == set((ROOT / "functions").glob("*/app.py"))
    for handler, env in environments.items():
        assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1", handler
        unresolved = {name: value for name, value in env.items() if "${" in value or not isinstance(value, str)}
        assert not unresolved, f"{handler.parent.name}: {unresolved}"


def test_a_handlers_settings_pass_with_the_bench_environment(monkeypatch) -> None:
    """What the bench measures is a handler that imports: its settings accept the environment it is given."""
    from medspa.adapters.settings import LifecycleSettings, SettlementSettings

    environments = function_environments()
    for name, settings in (("lifecycle", LifecycleSettings), ("settlement", SettlementSettings)):
        with monkeypatch.context() as patch:
            for variable, value in environments[ROOT / "functions" / name / "app.py"].items():
                patch.setenv(variable, value)
            settings()


def test_the_median_is_of_the_printed_seconds() -> None:
    assert _median_seconds(["print(0.3)"], 3) == 0.3
