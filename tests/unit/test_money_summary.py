"""The report's money summary counts what a released fee gave back as waived, not as covered or forfeited."""

from __future__ import annotations

from localcloud.report import money_summary


def _line(purpose: str, kind: str, amount: int) -> dict:
    return {"appointment_id": "apt-1", "client_id": "glow#c-1", "purpose": purpose, "kind": kind, "attempt": 1,
            "amount": {"amount": amount, "currency": "HKD"}, "status": "succeeded"}


def test_a_released_fee_gives_back_its_course_session_and_deposit_and_the_split_still_adds_up() -> None:
    ledger = [_line("no_show_fee_deposit", "forfeit", 10000), _line("no_show_fee_course_session", "deduction", 40000),
              _line("no_show_fee_deposit_released", "credit", 10000),
              _line("no_show_fee_course_session_released", "credit", 40000),
              _line("late_reschedule_fee_course_session", "deduction", 50000)]
    [(location, money)] = money_summary(ledger, {("glow", "apt-1"): "glow-hk"}).items()
    assert location == "glow-hk"
    assert (money["assessed"], money["covered"], money["waived"]) == ({"HKD": 100000}, {"HKD": 50000}, {"HKD": 50000})
    assert money["forfeited"] == {} and money["outstanding"] == {}
    assert money["fees"]["no_show"] == {"count": 1, "total": {"HKD": 50000}}
