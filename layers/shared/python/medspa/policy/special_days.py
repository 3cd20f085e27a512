"""Special days by rule, worked out year by year, so a pack's calendar never runs out.

MassageLuXe may change its cancellation window on "holidays, holiday weekends, Valentine's Day,
Mother's Day, and Father's Day". Typed as dates, that list lapsed silently: after 2026-11-29 no visit
got the holiday window any more and nothing said so. Here the days come from rules instead:

* holidays: the public holidays of the location's country and state as the maintained ``holidays``
  library keeps them (observed days included: when the 4th of July is a Sunday, Monday the 5th is
  the day off), so a new state holiday arrives with a library upgrade, not a pack edit;
* holiday weekends: the long weekend a holiday makes. A holiday on a Friday or Monday joins the
  Saturday and Sunday next to it; one on a Thursday or Tuesday also takes the bridge day between
  (Thanksgiving weekend is Thursday to Sunday); a Wednesday holiday makes no long weekend;
* named days: the days a spa names that are nobody's day off, by their calendar rule.

Results are cached per (country, state, year): the engine asks once per visit and a year's answer
never changes under a pinned library version.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from typing import Any, Literal, get_args


def country_holidays(country: str, subdiv: str | None = None, years: int | range | None = None) -> Any:
    """``holidays.country_holidays``, imported on first use: a cold start loads packs validated at build time
    (``medspa.policy.loader``) and needs no calendar until a rule asks for one."""
    from holidays import country_holidays as calendar

    return calendar(country, subdiv=subdiv, years=years)

NamedDay = Literal[
    "valentines_day", "mothers_day", "mothers_day_weekend", "fathers_day", "christmas_eve", "new_years_eve"
]
NAMED_DAYS: tuple[str, ...] = get_args(NamedDay)

# Days from a holiday to the rest of the long weekend it makes, by the holiday's weekday (Monday = 0).
_LONG_WEEKEND: dict[int, tuple[int, ...]] = {
    0: (-2, -1),  # Monday: the Saturday and Sunday before
    1: (-3, -2, -1),  # Tuesday: Saturday, Sunday and the bridge Monday
    3: (1, 2, 3),  # Thursday: the bridge Friday, Saturday and Sunday
    4: (1, 2),  # Friday: the Saturday and Sunday after
}


def _nth_sunday(year: int, month: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))


def named_day_dates(name: NamedDay, year: int) -> tuple[date, ...]:
    """The dates of a named day in ``year``, by the US rule (Mother's Day: the second Sunday of May;
    Father's Day: the third Sunday of June). Mother's Day weekend is its Saturday and Sunday."""
    if name == "valentines_day":
        return (date(year, 2, 14),)
    if name == "mothers_day":
        return (_nth_sunday(year, 5, 2),)
    if name == "mothers_day_weekend":
        sunday = _nth_sunday(year, 5, 2)
        return (sunday - timedelta(days=1), sunday)
    if name == "fathers_day":
        return (_nth_sunday(year, 6, 3),)
    if name == "christmas_eve":
        return (date(year, 12, 24),)
    if name == "new_years_eve":
        return (date(year, 12, 31),)
    raise ValueError(f"no rule for the named day {name!r}")


def check_place(country: str, state: str | None) -> None:
    """Refuse a country or state the library does not know, when the pack loads rather than at the
    first cancellation: an unknown place would otherwise have no holidays at all, silently."""
    try:
        calendar = country_holidays(country, subdiv=state)
    except NotImplementedError as err:
        raise ValueError(f"the holidays library has no calendar for {country}"
                         f"{'-' + state if state else ''}: {err}") from err
    code = type(calendar).subdivisions_aliases.get(state) if state else None
    if code is not None and code != state:
        raise ValueError(f"write the state as its code {code!r}, not {state!r}")


@lru_cache(maxsize=512)
def public_holidays(country: str, state: str | None, year: int, only: frozenset[str] = frozenset()) -> frozenset[date]:
    """The year's public holidays; with ``only``, just those of these names (an observed day keeps the name
    of its holiday: "Independence Day (observed)" is "Independence Day")."""
    calendar = country_holidays(country, subdiv=state, years=year)
    return frozenset(day for day, names in calendar.items()
                     if not only or any(_plain(name) in only for name in names.split("; ")))


def _plain(name: str) -> str:
    return name.removesuffix(" (observed)")


def holiday_names(country: str, state: str | None) -> frozenset[str]:
    """Every holiday name the library knows for the place over a decade, to check a pack's ``only`` list."""
    calendar = country_holidays(country, subdiv=state, years=range(2025, 2036))
    return frozenset(_plain(name) for names in calendar.values() for name in names.split("; "))


@lru_cache(maxsize=512)
def holiday_weekend_days(country: str, state: str | None, year: int) -> frozenset[date]:
    """The days of ``year`` that a holiday joins into its long weekend. Neighbouring years count: a
    Monday 1 January makes Saturday 30 and Sunday 31 December a holiday weekend."""
    days = {
        holiday + timedelta(days=offset)
        for y in (year - 1, year, year + 1)
        for holiday in public_holidays(country, state, y)
        for offset in _LONG_WEEKEND.get(holiday.weekday(), ())
    }
    return frozenset(d for d in days if d.year == year)
