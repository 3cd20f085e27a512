"""Policy packs: they load, every rule is traceable to its seed, and a broken pack says where."""

from __future__ import annotations

import ast
from datetime import date
from pathlib import Path

import pytest

from medspa.policy.loader import PACKS_DIR, PolicyPackError, load_pack, load_packs
from medspa.policy.schema import PolicyPack, Source

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / ".." / "shared" / "seeds"
PACKAGE = REPO / "layers" / "shared" / "python" / "medspa"
PACKS = load_packs()

SEED_OF = {
    "bijoux": "000_3e89d9d88c38ea0b.txt",
    "406medicalspa": "001_a2ff4cc6e58016f1.txt",
    "massageluxe-scottsdale": "002_454b2b74051a578f.txt",
    "massageluxe-austin": "002_454b2b74051a578f.txt",
    "glow-hk": "003_428687c7c649764a.txt",
}


def _normalised(text: str) -> str:
    return " ".join(text.split())


def test_the_shipped_packs_load_by_location_id():
    assert set(PACKS) == set(SEED_OF)
    assert {p.location.time_zone for p in PACKS.values()} == {
        "America/New_York",
        "America/Denver",
        "America/Chicago",
        "America/Phoenix",
        "Asia/Hong_Kong",
    }
    assert PACKS["glow-hk"].currency == "HKD"
    assert {p.currency for k, p in PACKS.items() if k != "glow-hk"} == {"USD"}
    assert len({p.policy_version for p in PACKS.values()}) == len(PACKS)


@pytest.mark.parametrize("location_id", sorted(SEED_OF))
def test_every_rule_cites_its_own_seed_or_states_an_assumption(location_id):
    sources = PACKS[location_id].sources()
    assert len(sources) >= 10
    for path, source in sources:
        assert source.seed in (None, SEED_OF[location_id]), path
        assert source.quotes or source.assumption, path


@pytest.mark.skipif(not SEEDS.is_dir(), reason=f"seed texts not found at {SEEDS.resolve()}")
@pytest.mark.parametrize("location_id", sorted(SEED_OF))
def test_every_quote_is_really_in_the_seed(location_id):
    seed_text = {}
    for path, source in PACKS[location_id].sources():
        for quote in source.quotes:
            text = seed_text.setdefault(source.seed, _normalised((SEEDS / source.seed).read_text(encoding="utf-8")))
            assert _normalised(quote) in text, f"{location_id}: {path}: not in {source.seed}: {quote!r}"


def test_a_source_needs_a_quote_or_an_assumption():
    with pytest.raises(ValueError, match="seed quote or an assumption"):
        Source()
    with pytest.raises(ValueError, match="seed and quote go together"):
        Source(quote="orphan sentence", assumption="x")


def _broken_copy(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = (PACKS_DIR / name).read_text(encoding="utf-8")
    assert old in text
    target = tmp_path / name
    target.write_text(text.replace(old, new, 1), encoding="utf-8")
    return target


def test_an_invalid_fee_names_the_file_and_the_field_path(tmp_path):
    path = _broken_copy(tmp_path, "bijoux.toml", 'category = "esthetician"\namount = 5000', 'category = "esthetician"\namount = "50.00"')
    with pytest.raises(PolicyPackError) as err:
        load_pack(path)
    assert str(err.value) == "bijoux.toml: fees.schedule[2].amount: Input should be a valid integer"


BROKEN = [
    (
        "bijoux.toml",
        'time_zone = "America/New_York"',
        'time_zone = "America/Orlando"',
        "bijoux.toml: location.time_zone: Value error, unknown IANA time zone 'America/Orlando'",
    ),
    (
        "406medicalspa.toml",
        "window_hours = 24\n",
        "window_hours = 24\nwindow_days = 1\n",
        "406medicalspa.toml: cancellation.window_days: Extra inputs are not permitted",
    ),
    (
        "406medicalspa.toml",
        "window_hours = 24\n",
        "window_hours = -1\n",
        "406medicalspa.toml: cancellation.window_hours: Input should be greater than or equal to 0",
    ),
    (
        "glow-hk.toml",
        'order = ["course_session", "prepayment", "card_on_file", "outstanding_balance"]',
        'order = ["course_session", "card_on_file"]',
        "glow-hk.toml: settlement: Value error, the order must end with outstanding_balance",
    ),
    (
        "glow-hk.toml",
        'currency = "HKD"',
        'currency = "hkd"',
        "glow-hk.toml: location.currency: String should match pattern",
    ),
    (
        "massageluxe-austin.toml",
        'name = "72h"\nhours_before = 72',
        'name = "72h"\nhours_before = 72\nat_local_time = 08:00:00',
        "massageluxe-austin.toml: reminders[0]: Value error, set exactly one of hours_before and at_local_time",
    ),
    (
        "massageluxe-austin.toml",
        'country = "US", state = "TX"',
        'country = "US", state = "TQ"',
        "massageluxe-austin.toml: cancellation.overrides[0].calendar: Value error, the holidays library has no "
        "calendar for US-TQ",
    ),
    (
        "massageluxe-austin.toml",
        'country = "US", state = "TX"',
        'country = "US", state = "Texas"',
        "massageluxe-austin.toml: cancellation.overrides[0].calendar: Value error, write the state as its code 'TX'",
    ),
    (
        "massageluxe-austin.toml",
        'country = "US", state = "TX", ',
        "",
        "massageluxe-austin.toml: cancellation.overrides[0].calendar: Value error, holidays and holiday_weekends "
        "need the location's country",
    ),
    (
        "massageluxe-austin.toml",
        'named_days = ["mothers_day_weekend"]',
        'named_days = ["mothers_day_brunch"]',
        "massageluxe-austin.toml: cancellation.overrides[1].calendar.named_days[0]: Input should be ",
    ),
    (
        "massageluxe-scottsdale.toml",
        'window_hours = 48\ncalendar = {',
        'window_hours = 48\nfirst = 2027-01-01\ncalendar = {',
        "massageluxe-scottsdale.toml: cancellation.overrides[0]: Value error, set exactly one of calendar and first",
    ),
    (
        "massageluxe-scottsdale.toml",
        "[[cancellation.overrides]]",
        "[[cancellation.date_overrides]]\nname = \"Thanksgiving weekend 2026\"\nfirst = 2026-11-26\nlast = 2026-11-29\n"
        "window_hours = 48\nsource = { assumption = \"x\" }\n\n[[cancellation.overrides]]",
        "massageluxe-scottsdale.toml: cancellation.date_overrides: Extra inputs are not permitted",
    ),
    (
        "bijoux.toml",
        "max_minutes = 30\namount = 5000",
        "max_minutes = 30\namount = 5000\nfull_service_price = true",
        "bijoux.toml: fees.schedule[0]: Value error, set exactly one of amount",
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "expected"), BROKEN)
def test_invalid_packs_say_where(tmp_path, name, old, new, expected):
    with pytest.raises(PolicyPackError) as err:
        load_pack(_broken_copy(tmp_path, name, old, new))
    assert str(err.value).startswith(expected)


def test_a_toml_syntax_error_names_the_file(tmp_path):
    path = _broken_copy(tmp_path, "bijoux.toml", "[spa]", "[spa")
    with pytest.raises(PolicyPackError, match=r"^bijoux\.toml: "):
        load_pack(path)


def test_a_spa_adds_a_location_by_writing_a_pack_file(tmp_path):
    text = (PACKS_DIR / "massageluxe-austin.toml").read_text(encoding="utf-8")
    (tmp_path / "massageluxe-mesa.toml").write_text(
        text.replace('id = "massageluxe-austin"', 'id = "massageluxe-mesa"').replace("America/Chicago", "America/Phoenix"),
        encoding="utf-8",
    )
    packs = load_packs(tmp_path)
    assert packs["massageluxe-mesa"].location.time_zone == "America/Phoenix"


def test_the_file_name_must_be_the_location_id(tmp_path):
    (tmp_path / "bijoux-copy.toml").write_text((PACKS_DIR / "bijoux.toml").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(PolicyPackError, match=r"bijoux-copy\.toml: location\.id: 'bijoux' must match the file name"):
        load_packs(tmp_path)


def test_massageluxe_locations_differ_in_window_and_holidays():
    scottsdale, austin = PACKS["massageluxe-scottsdale"].cancellation, PACKS["massageluxe-austin"].cancellation
    assert (scottsdale.window_hours, austin.window_hours) == (24, 48)
    assert scottsdale.party_size_override.min_party_size == austin.party_size_override.min_party_size == 4
    assert (scottsdale.party_size_override.window_hours, austin.party_size_override.window_hours) == (48, 72)
    places = {(o.calendar.country, o.calendar.state) for c in (scottsdale, austin) for o in c.overrides
              if o.calendar and o.calendar.holidays}
    assert places == {("US", "AZ"), ("US", "TX")}
    for rules in (scottsdale, austin):
        assert all(o.calendar is not None for o in rules.overrides), "the seed's days come back every year"
        calendars = [o.calendar for o in rules.overrides]
        assert any(c.holidays for c in calendars) and any(c.holiday_weekends for c in calendars)
        named = {n for c in calendars for n in c.named_days}
        assert {"valentines_day", "fathers_day"} <= named and named & {"mothers_day", "mothers_day_weekend"}
        weekend = [o for o in rules.overrides if o.calendar.holiday_weekends]
        assert all("Friday or a Monday" in o.source.assumption and "Wednesday holiday makes none" in o.source.assumption
                   for o in weekend), "the holiday-weekend reading is written in the pack"


def test_every_shipped_pack_still_has_a_future():
    """Judged against the real date: a pack whose dated overrides have all passed fails the build."""
    assert set(load_packs(today=date.today())) == set(SEED_OF)


def _dated_only(tmp_path: Path, *spans: tuple[str, str]) -> Path:
    """Scottsdale's pack as it shipped in 2025: its special days typed as dates."""
    text = (PACKS_DIR / "massageluxe-scottsdale.toml").read_text(encoding="utf-8")
    start = text.index("[[cancellation.overrides]]")
    dated = "".join(
        f'[[cancellation.overrides]]\nname = "Holiday {first}"\nfirst = {first}\nlast = {last}\nwindow_hours = 48\n'
        f'source = {{ assumption = "A holiday by date." }}\n\n' for first, last in spans)
    target = tmp_path / "massageluxe-scottsdale.toml"
    target.write_text(text[:start] + dated + text[text.index("[fees]"):], encoding="utf-8")
    return target


def test_a_pack_whose_dated_overrides_have_all_lapsed_fails_naming_the_file_and_field(tmp_path):
    path = _dated_only(tmp_path, ("2025-12-24", "2025-12-25"), ("2026-11-26", "2026-11-29"))
    with pytest.raises(PolicyPackError) as err:
        load_pack(path, today=date(2026, 11, 30))
    assert str(err.value).splitlines() == [
        "massageluxe-scottsdale.toml: cancellation.overrides[0].last: 'Holiday 2025-12-24' ended on 2025-12-25, "
        "and no dated override is still ahead of 2026-11-30; give days that come back every year a calendar rule "
        "and remove the ones that are over",
        "massageluxe-scottsdale.toml: cancellation.overrides[1].last: 'Holiday 2026-11-26' ended on 2026-11-29, "
        "and no dated override is still ahead of 2026-11-30; give days that come back every year a calendar rule "
        "and remove the ones that are over",
    ]
    with pytest.raises(PolicyPackError, match=r"^massageluxe-scottsdale\.toml: cancellation\.overrides\[0\]"):
        load_packs(tmp_path, today=date(2026, 11, 30))


def test_a_dated_override_still_ahead_keeps_the_pack_valid_and_the_running_system_never_judges_lapse(tmp_path):
    path = _dated_only(tmp_path, ("2025-12-24", "2025-12-25"), ("2026-11-26", "2026-11-29"))
    assert len(load_pack(path, today=date(2026, 11, 29)).cancellation.overrides) == 2  # its last day
    assert len(load_pack(path).cancellation.overrides) == 2  # no ``today``: the Lambda functions' load
    closure = _dated_only(tmp_path, ("2026-11-26", "2026-11-29"), ("2027-03-01", "2027-03-01"))
    assert load_pack(closure, today=date(2027, 3, 1)).cancellation.lapsed_overrides(date(2027, 3, 1)) == []
    with pytest.raises(PolicyPackError, match=r"overrides\[1\]\.last: 'Holiday 2027-03-01' ended on 2027-03-01"):
        load_pack(closure, today=date(2027, 3, 2))


def test_a_one_day_override_is_named_by_its_first_date(tmp_path):
    text = _dated_only(tmp_path, ("2026-07-04", "2026-07-04")).read_text(encoding="utf-8")
    (tmp_path / "massageluxe-scottsdale.toml").write_text(text.replace("last = 2026-07-04\n", ""), encoding="utf-8")
    with pytest.raises(PolicyPackError, match=r"overrides\[0\]\.first: 'Holiday 2026-07-04' ended on 2026-07-04"):
        load_pack(tmp_path / "massageluxe-scottsdale.toml", today=date(2026, 7, 5))


def test_massageluxe_membership_terms_are_data():
    terms = PACKS["massageluxe-scottsdale"].membership
    assert PACKS["massageluxe-scottsdale"].money(terms.freeze.monthly_draft).amount == 500
    assert (terms.freeze.form_within_hours, terms.freeze.min_full_dues_paid) == (48, 1)
    assert terms.freeze.credits_usable_while_frozen is False
    assert terms.freeze.unfreeze_redrafts_full_dues_today is True
    assert (terms.cancellation.form_within_hours, terms.cancellation.services_usable_days) == (48, 60)
    assert terms.cancellation.store_credit_forfeited and terms.cancellation.after_first_full_draft
    assert (terms.certificates.valid_months, terms.certificates.redemption_fee, terms.certificates.one_per_months) == (6, 2000, 6)
    assert terms.rollover.unused_services_roll_over
    assert terms.paid_in_full.grace_days_after_expiry == 0
    assert all(PACKS[k].membership is None for k in ("bijoux", "406medicalspa", "glow-hk"))


def test_glow_prepaid_services_expire_and_defer():
    prepaid = PACKS["glow-hk"].prepaid
    assert (prepaid.expires_after_months, prepaid.medical_deferral_months) == (12, 18)
    assert prepaid.book_next_session_on_completion


def test_opt_out_keywords_include_the_seed_words_and_every_carrier_word():
    assert {"STOP", "UNSUBSCRIBE"} <= set(PACKS["406medicalspa"].messaging.keywords.opt_out)
    for pack in PACKS.values():
        assert {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"} <= set(
            pack.messaging.keywords.words("opt_out"))
        assert {"START", "UNSTOP"} <= set(pack.messaging.keywords.words("opt_in"))


def test_keyword_groups_are_disjoint():
    keywords = PACKS["bijoux"].messaging.keywords.model_dump()
    keywords["confirm"] = ["SI"]
    keywords["opt_in"] = ["si"]
    with pytest.raises(ValueError, match="one group only"):
        type(PACKS["bijoux"].messaging.keywords).model_validate(keywords)
    keywords["opt_in"], keywords["confirm"] = [], ["stop"]
    with pytest.raises(ValueError, match="base opt_out keyword"):
        type(PACKS["bijoux"].messaging.keywords).model_validate(keywords)


def test_every_location_has_a_contact_line_for_help_replies():
    lines = {k: p.contact.line for k, p in PACKS.items()}
    assert lines["bijoux"] == "Bijoux Med Spa: 407-213-GLOW, info@bijouxmedspa.com"
    assert lines["406medicalspa"] == "406MedicalSpa: 406-287-6565, hello@406medicalspa.com"
    assert lines["massageluxe-austin"] == "MassageLuXe Austin: massageluxe.com"
    placeholders = [k for k, p in PACKS.items() if ".example" in p.contact.line]
    assert placeholders == ["glow-hk"] and "placeholder" in PACKS["glow-hk"].contact.source.assumption


def test_a_contact_needs_a_way_to_reach_someone(tmp_path):
    path = _broken_copy(tmp_path, "bijoux.toml", 'phone = "407-213-GLOW"\nemail = "info@bijouxmedspa.com"\n', "")
    with pytest.raises(PolicyPackError, match=r"bijoux\.toml: contact: .*phone number, an email address or a web"):
        load_pack(path)


def test_pack_roundtrips_through_json_for_state_machine_payloads():
    pack = PACKS["massageluxe-austin"]
    assert PolicyPack.model_validate_json(pack.model_dump_json()) == pack


FORBIDDEN_MODULES = {"boto3", "botocore", "pynamodb", "stripe", "os", "time"}
CLOCK_READS = {"now", "utcnow", "today"}


@pytest.mark.parametrize("package", ["domain", "policy"])
def test_domain_and_policy_are_pure(package):
    """No cloud SDK, no environment, no clock: ``now`` is always an argument."""
    files = sorted((PACKAGE / package).rglob("*.py"))
    assert files
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                roots = set()
            assert not roots & FORBIDDEN_MODULES, f"{path.name}:{node.lineno} imports {roots & FORBIDDEN_MODULES}"
            if isinstance(node, ast.Attribute):
                assert node.attr != "environ", f"{path.name}:{node.lineno} reads the environment"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr not in CLOCK_READS, f"{path.name}:{node.lineno} reads the clock"


def test_the_prevalidated_packs_are_current_and_equal_the_validated_files() -> None:
    """A cold start loads the packs the build validated (``loader.PREVALIDATED``); they must be these files,
    validated by this code. When this fails: ``make lock-packs`` writes them again."""
    from medspa.policy import loader

    assert loader.prevalidated_is_current(), "packs/prevalidated.pickle is stale: run `make lock-packs`"
    ready, validated = loader._prevalidated(), loader._validated(PACKS_DIR, None)
    assert ready is not None
    assert dict(ready) == dict(validated) and ready._versions == validated._versions
    assert [ready.versions(location) for location in ready] == [validated.versions(location) for location in validated]


def test_a_stale_or_missing_prevalidated_file_is_never_used(tmp_path, monkeypatch) -> None:
    """A file made from other packs or other code costs the cold start a validation, never a wrong policy."""
    from medspa.policy import loader

    stale = tmp_path / "prevalidated.pickle"
    stale.write_bytes(b"0" * 64 + b"\n" + loader.PREVALIDATED.read_bytes().partition(b"\n")[2])
    validated: list[Path] = []
    real = loader._validated
    monkeypatch.setattr(loader, "_validated", lambda root, today: validated.append(root) or real(root, today))
    for path in (stale, tmp_path / "missing.pickle"):
        monkeypatch.setattr(loader, "PREVALIDATED", path)
        assert loader._prevalidated() is None and not loader.prevalidated_is_current(path)
        assert dict(load_packs()) == dict(PACKS)
    assert validated == [PACKS_DIR, PACKS_DIR]


def test_the_fingerprint_covers_every_pack_file_and_the_validating_code(tmp_path) -> None:
    from medspa.policy import loader

    copy = tmp_path / "packs"
    copy.mkdir()
    for path in PACKS_DIR.rglob("*.toml"):
        (copy / path.relative_to(PACKS_DIR)).parent.mkdir(parents=True, exist_ok=True)
        (copy / path.relative_to(PACKS_DIR)).write_bytes(path.read_bytes())
    assert loader.packs_fingerprint(copy) == loader.packs_fingerprint()  # where the layer sits does not matter
    history = next(copy.glob("history/*/*.toml"))
    history.write_bytes(history.read_bytes() + b"\n# an edit\n")
    assert loader.packs_fingerprint(copy) != loader.packs_fingerprint()


def test_the_prevalidated_file_unpickles_nothing_but_pack_types(tmp_path, monkeypatch) -> None:
    import pickle

    from medspa.policy import loader

    evil = tmp_path / "prevalidated.pickle"
    evil.write_bytes(loader.packs_fingerprint().encode() + b"\n" + pickle.dumps(Path("/etc/passwd")))
    monkeypatch.setattr(loader, "PREVALIDATED", evil)
    with pytest.raises(pickle.UnpicklingError, match="is not part of a policy pack"):
        loader._prevalidated()
