"""The policy the client accepted (issue 11, item 5): packs keep their versions, published versions never
change or vanish, and a visit is judged by the version it was booked under."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from medspa.events import parse_booking_event
from medspa.events.examples import EXAMPLES
from medspa.events.history import fold
from medspa.policy import versions
from medspa.policy.loader import UNKNOWN_VERSION, PolicyPackError, PolicyPacks, load_packs
from tests.support.pack_versions import BIJOUX_V1, BIJOUX_V2, copy_of_the_shipped_packs, publish_bijoux_v2

SHIPPED = load_packs()


@pytest.fixture
def packs_dir(tmp_path: Path) -> Path:
    return copy_of_the_shipped_packs(tmp_path)


@pytest.fixture
def republished(packs_dir: Path) -> Path:
    publish_bijoux_v2(packs_dir)
    return packs_dir


# ------------------------------------------------------------------------------ the lock


def test_every_shipped_version_is_locked_unchanged_and_kept():
    """Fails when a pack was edited without a new policy_version, a published version's file was deleted,
    or a new version was not locked (`make lock-packs`)."""
    assert versions.problems() == []
    assert set(versions.read_lock()) >= {f"{loc}@{pack.policy_version}" for loc, pack in SHIPPED.items()}


def test_an_edit_without_a_new_version_fails_the_check_and_lock_refuses_to_rehash_it(packs_dir):
    path = packs_dir / "406medicalspa.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("amount = 7500", "amount = 9900", 1), encoding="utf-8")
    [problem] = versions.problems(packs_dir)
    assert problem.startswith("406medicalspa.toml: 406medicalspa@406medicalspa-2025.1 changed after it was published")
    locked = (packs_dir / versions.LOCK_FILE).read_text(encoding="utf-8")
    with pytest.raises(versions.VersionLockError, match="needs a new policy_version"):
        versions.lock(packs_dir)
    assert (packs_dir / versions.LOCK_FILE).read_text(encoding="utf-8") == locked
    assert versions.main(["--packs", str(packs_dir), "check"]) == 1


def test_a_published_version_is_never_deleted(republished):
    (republished / "history" / "bijoux" / f"{BIJOUX_V1}.toml").unlink()
    assert versions.problems(republished) == [
        f"bijoux@{BIJOUX_V1}: published but no file holds it; versions are never deleted: restore it as "
        f"history/bijoux/{BIJOUX_V1}.toml"]
    with pytest.raises(versions.VersionLockError, match="never deleted"):
        versions.lock(republished)


def test_a_new_version_is_unlocked_until_lock_pins_it(packs_dir):
    versions.archive("bijoux", packs_dir)
    path = packs_dir / "bijoux.toml"
    path.write_text(path.read_text(encoding="utf-8").replace(BIJOUX_V1, BIJOUX_V2), encoding="utf-8")
    assert versions.problems(packs_dir) == [f"bijoux.toml: bijoux@{BIJOUX_V2} is not in versions.lock; run "
                                            "`make lock-packs`"]
    assert versions.main(["--packs", str(packs_dir), "lock"]) == 0
    assert versions.problems(packs_dir) == []
    assert versions.read_lock(packs_dir)[f"bijoux@{BIJOUX_V2}"] == versions.sha256_of(path)


def test_archive_keeps_the_current_file_byte_for_byte_and_refuses_to_overwrite_another(packs_dir):
    kept = versions.archive("bijoux", packs_dir)
    assert kept == packs_dir / "history" / "bijoux" / f"{BIJOUX_V1}.toml"
    assert kept.read_bytes() == (packs_dir / "bijoux.toml").read_bytes()
    assert versions.archive("bijoux", packs_dir) == kept  # again, unchanged: nothing to do
    (packs_dir / "bijoux.toml").write_text(kept.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    with pytest.raises(versions.VersionLockError, match="edited without a new policy_version"):
        versions.archive("bijoux", packs_dir)


# ------------------------------------------------------------------------------ history on load


def test_history_is_loaded_beside_the_current_packs(republished):
    packs = load_packs(republished)
    assert isinstance(packs, PolicyPacks)
    assert set(packs) == set(SHIPPED) and packs["bijoux"].policy_version == BIJOUX_V2
    assert packs.versions("bijoux") == (BIJOUX_V1, BIJOUX_V2)
    assert packs.knows("bijoux", BIJOUX_V1) and not packs.knows("406medicalspa", BIJOUX_V1)


def test_a_history_file_must_sit_where_its_location_and_version_say(republished):
    kept = republished / "history" / "bijoux" / f"{BIJOUX_V1}.toml"
    kept.rename(kept.with_name("bijoux-old.toml"))
    with pytest.raises(PolicyPackError, match=r"^history/bijoux/bijoux-old\.toml: policy_version: .* must match the "
                                              "file name"):
        load_packs(republished)
    moved = republished / "history" / "406medicalspa"
    moved.mkdir()
    (kept.with_name("bijoux-old.toml")).rename(moved / f"{BIJOUX_V1}.toml")
    with pytest.raises(PolicyPackError, match=r"location\.id: 'bijoux' must match the folder name"):
        load_packs(republished)


def test_the_current_version_lives_in_the_current_file_only(packs_dir):
    versions.archive("bijoux", packs_dir)
    with pytest.raises(PolicyPackError, match=r"is the current version of bijoux\.toml; a new edit needs a new"):
        load_packs(packs_dir)


def test_a_lapsed_dated_override_fails_a_current_pack_but_not_history(republished):
    """A superseded version judges the visits booked under it whatever the date: only current packs must have
    a future."""
    from datetime import date

    kept = republished / "history" / "bijoux" / f"{BIJOUX_V1}.toml"
    dated = ('[[cancellation.overrides]]\nname = "Grand opening 2024"\nfirst = 2024-04-01\nwindow_hours = 72\n'
             'source = { assumption = "A one-off." }\n\n[fees]')
    kept.write_text(kept.read_text(encoding="utf-8").replace("[fees]", dated, 1), encoding="utf-8")
    packs = load_packs(republished, today=date(2026, 3, 9))
    assert packs.accepted("bijoux", BIJOUX_V1).cancellation.overrides[0].name == "Grand opening 2024"
    current = republished / "bijoux.toml"
    current.write_text(current.read_text(encoding="utf-8").replace("[fees]", dated, 1), encoding="utf-8")
    with pytest.raises(PolicyPackError, match=r"^bijoux\.toml: cancellation\.overrides\[0\]\.first"):
        load_packs(republished, today=date(2026, 3, 9))


def test_a_policy_version_must_be_usable_as_a_file_name(packs_dir):
    path = packs_dir / "bijoux.toml"
    path.write_text(path.read_text(encoding="utf-8").replace(BIJOUX_V1, "bijoux/2024"), encoding="utf-8")
    with pytest.raises(PolicyPackError, match=r"^bijoux\.toml: policy_version: String should match pattern"):
        load_packs(packs_dir)


# ------------------------------------------------------------------------------ PolicyPacks


def test_by_location_it_is_the_current_pack_and_accepted_is_the_booked_version(republished):
    packs = load_packs(republished)
    assert packs["bijoux"].cancellation.window_hours == 24
    assert packs.accepted("bijoux", BIJOUX_V1).cancellation.window_hours == 48
    assert packs.accepted("bijoux", BIJOUX_V2) is packs["bijoux"]
    assert dict(packs) == {loc: packs[loc] for loc in packs} and len(packs) == len(SHIPPED)


@pytest.mark.parametrize("version", [UNKNOWN_VERSION, "bijoux-2019.1", None])
def test_a_version_not_held_falls_back_to_the_current_pack(republished, version):
    packs = load_packs(republished)
    assert packs.accepted("bijoux", version) is packs["bijoux"]


def test_a_location_without_a_pack_is_a_key_error_and_a_plain_dict_is_current_packs_only():
    with pytest.raises(KeyError):
        SHIPPED.accepted("nowhere", "nowhere-1")
    plain = PolicyPacks.of({"bijoux": SHIPPED["bijoux"]})
    assert plain.accepted("bijoux", "anything") is SHIPPED["bijoux"] and list(plain) == ["bijoux"]
    assert PolicyPacks.of(SHIPPED) is SHIPPED


# ------------------------------------------------------------------------------ the fold

# The Bijoux example visit: a 30-minute injection on Fri 14 Mar 2025 at 14:30 EDT. Cancelled 36 hours ahead,
# late under v1 (48 hours, $50), on time under v2 (24 hours, $80).


def _event(detail_type: str, version: int, **detail):
    raw = copy.deepcopy(EXAMPLES[detail_type])
    raw["detail"].update(booking_version=version, event_id=f"e-{version}", **detail)
    return parse_booking_event(raw)


def _booked_then_cancelled_36_hours_ahead():
    return [_event("AppointmentBooked", 1), _event("AppointmentCancelled", 2, occurred_at="2025-03-13T02:30:00-04:00")]


def test_a_refold_after_a_new_version_keeps_the_accepted_one_and_judges_by_it(republished):
    packs = load_packs(republished)
    booking = fold(_booked_then_cancelled_36_hours_ahead(), packs, accepted_version=BIJOUX_V1).booking
    assert booking.policy_version == BIJOUX_V1
    [violation] = booking.facts.violations
    assert (violation.reason, violation.notice_minutes) == ("late_cancel", 36 * 60)


def test_a_booking_first_folded_after_the_change_accepts_the_new_version(republished):
    booking = fold(_booked_then_cancelled_36_hours_ahead(), load_packs(republished)).booking
    assert booking.policy_version == BIJOUX_V2
    assert booking.facts.violations == ()


def test_a_reschedule_keeps_the_version_accepted_at_first_booking(republished):
    moved = _event("AppointmentRescheduled", 2, occurred_at="2025-03-10T10:00:00-04:00",
                   starts_at="2025-03-21T14:30:00-04:00")
    cancel = _event("AppointmentCancelled", 3, occurred_at="2025-03-20T02:30:00-04:00")  # 36 h before the new time
    booking = fold([_event("AppointmentBooked", 1), moved, cancel], load_packs(republished),
                   accepted_version=BIJOUX_V1).booking
    assert booking.policy_version == BIJOUX_V1
    assert [v.reason for v in booking.facts.violations] == ["late_cancel"]
