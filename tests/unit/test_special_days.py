"""MassageLuXe's special days by rule: every year, on the visit's local date, at both locations.

The packs once listed these days as dates, and after 2026-11-29 none applied. These tests look years
ahead, where a dated list would have run out.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from holidays import country_holidays
from hypothesis import given
from hypothesis import strategies as st

from medspa.domain.engine import cancellation_window, classify_cancellation
from medspa.policy.special_days import NAMED_DAYS, holiday_weekend_days, named_day_dates
from tests.support.packs import AUSTIN, SCOTTSDALE, visit

YEARS = st.integers(min_value=2025, max_value=2035)
WALL_TIMES = st.times()
BASE = {SCOTTSDALE.location_id: 24, AUSTIN.location_id: 48}


def hours(pack, local_start: datetime, party: int = 1) -> int:
    return int(cancellation_window(pack, visit(pack, local_start, category="massage", party=party)).total_seconds() // 3600)


def last_monday_of_may(year: int) -> date:
    day = date(year, 5, 31)
    return day - timedelta(days=day.weekday())


def thanksgiving(year: int) -> date:
    first = date(year, 11, 1)
    return first + timedelta(days=(3 - first.weekday()) % 7 + 21)


@given(YEARS)
def test_named_days_fall_where_their_rule_puts_them(year):
    [valentines] = named_day_dates("valentines_day", year)
    [mothers] = named_day_dates("mothers_day", year)
    [fathers] = named_day_dates("fathers_day", year)
    assert valentines == date(year, 2, 14)
    assert (mothers.month, mothers.weekday(), (mothers.day - 1) // 7) == (5, 6, 1)  # the 2nd Sunday of May
    assert (fathers.month, fathers.weekday(), (fathers.day - 1) // 7) == (6, 6, 2)  # the 3rd Sunday of June
    assert named_day_dates("mothers_day_weekend", year) == (mothers - timedelta(days=1), mothers)


def test_named_days_agree_with_the_holiday_library_for_a_decade():
    """An independent oracle: the library's unofficial US observances name the same dates."""
    names = {"valentines_day": "Valentine's Day", "mothers_day": "Mother's Day", "fathers_day": "Father's Day"}
    for year in range(2025, 2036):
        observances = country_holidays("US", years=year, categories=("unofficial",))
        for rule, name in names.items():
            assert named_day_dates(rule, year) == tuple(observances.get_named(name, lookup="exact")), (year, rule)
    assert set(names) < set(NAMED_DAYS)


@given(YEARS, WALL_TIMES)
def test_the_named_days_get_their_window_at_any_local_time_in_the_location_zone(year, wall):
    [mothers] = named_day_dates("mothers_day", year)
    for day in (date(year, 2, 14), *named_day_dates("fathers_day", year)):
        assert (hours(SCOTTSDALE, datetime.combine(day, wall)), hours(AUSTIN, datetime.combine(day, wall))) == (48, 72)
    assert hours(SCOTTSDALE, datetime.combine(mothers, wall)) == 48
    assert hours(AUSTIN, datetime.combine(mothers, wall)) == 96
    assert hours(AUSTIN, datetime.combine(mothers - timedelta(days=1), wall)) == 96  # Austin: the whole weekend
    assert hours(SCOTTSDALE, datetime.combine(mothers - timedelta(days=1), wall)) == 24  # Scottsdale: the Sunday


@given(YEARS, st.integers(min_value=17, max_value=23))
def test_the_local_date_decides_not_the_utc_one(year, hour):
    """17:00-23:59 in Phoenix is already the next day in UTC: Saturday evening is not Mother's Day
    there, and Mother's Day evening still is."""
    [mothers] = named_day_dates("mothers_day", year)
    saturday_evening = visit(SCOTTSDALE, datetime.combine(mothers - timedelta(days=1), time(hour)))
    sunday_evening = visit(SCOTTSDALE, datetime.combine(mothers, time(hour)))
    assert saturday_evening.starts_at.date() == mothers and sunday_evening.starts_at.date() > mothers  # UTC
    assert cancellation_window(SCOTTSDALE, saturday_evening) == timedelta(hours=24)
    assert cancellation_window(SCOTTSDALE, sunday_evening) == timedelta(hours=48)


@given(YEARS, WALL_TIMES)
def test_memorial_day_and_thanksgiving_make_holiday_weekends_every_year(year, wall):
    memorial, thanks = last_monday_of_may(year), thanksgiving(year)
    for pack, special in ((SCOTTSDALE, 48), (AUSTIN, 72)):
        for day in (memorial - timedelta(days=2), memorial - timedelta(days=1), memorial):
            assert hours(pack, datetime.combine(day, wall)) == special, (pack.location_id, day)
        for day in (thanks + timedelta(days=n) for n in range(4)):  # Thursday to Sunday
            assert hours(pack, datetime.combine(day, wall)) == special, (pack.location_id, day)
        assert hours(pack, datetime.combine(memorial - timedelta(days=3), wall)) == BASE[pack.location_id]
        assert hours(pack, datetime.combine(thanks - timedelta(days=1), wall)) == BASE[pack.location_id]


def test_a_wednesday_holiday_makes_no_long_weekend():
    assert date(2030, 6, 19).weekday() == 2  # Juneteenth 2030
    for pack in (SCOTTSDALE, AUSTIN):
        assert hours(pack, datetime(2030, 6, 19, 12)) > BASE[pack.location_id]
        for day in (15, 17, 18, 20, 21, 22, 23):
            assert hours(pack, datetime(2030, 6, day, 12)) == BASE[pack.location_id], day


def test_holiday_weekends_cross_the_new_year():
    # 1 January 2029 is a Monday: the weekend before it belongs to 2028.
    assert {date(2028, 12, 30), date(2028, 12, 31)} <= holiday_weekend_days("US", "AZ", 2028)
    assert hours(SCOTTSDALE, datetime(2028, 12, 30, 12)) == 48
    # 1 January 2028 is a Saturday, observed on Friday 31 December 2027: Sunday the 2nd follows it.
    assert date(2028, 1, 2) in holiday_weekend_days("US", "AZ", 2028)
    assert hours(SCOTTSDALE, datetime(2028, 1, 2, 12)) == 48
    assert hours(SCOTTSDALE, datetime(2028, 1, 4, 12)) == 24


def test_texas_state_holidays_count_in_austin_and_not_in_scottsdale():
    good_friday_2027 = datetime(2027, 3, 26, 12)
    assert (hours(AUSTIN, good_friday_2027), hours(SCOTTSDALE, good_friday_2027)) == (72, 24)
    easter_saturday = good_friday_2027 + timedelta(days=1)
    assert (hours(AUSTIN, easter_saturday), hours(SCOTTSDALE, easter_saturday)) == (72, 24)


def test_a_late_cancel_on_mothers_day_2027_in_austin_is_judged_by_the_override_window():
    mothers_day = visit(AUSTIN, datetime(2027, 5, 9, 11), category="massage", price="150")
    ordinary_sunday = visit(AUSTIN, datetime(2027, 5, 16, 11), category="massage", price="150")
    notice = timedelta(hours=80)  # inside Mother's Day weekend's 96 hours, outside the usual 48
    late = classify_cancellation(AUSTIN, mothers_day, mothers_day.starts_at - notice)
    on_time = classify_cancellation(AUSTIN, ordinary_sunday, ordinary_sunday.starts_at - notice)
    assert (late.event, late.fee_reason, late.window) == ("late_cancel", "late_cancel", timedelta(hours=96))
    assert (on_time.event, on_time.fee_reason, on_time.window) == ("on_time_cancel", None, timedelta(hours=48))


def test_a_group_on_a_special_day_gets_the_longer_of_the_two_windows():
    assert hours(SCOTTSDALE, datetime(2027, 5, 9, 11), party=4) == 48
    assert hours(AUSTIN, datetime(2027, 5, 30, 11), party=4) == 72
    assert hours(AUSTIN, datetime(2027, 5, 9, 11), party=4) == 96


@given(YEARS)
def test_406_is_closed_on_the_six_major_holidays_every_year_so_the_confirmation_deadline_moves_back(year):
    """406's closing days were a dated list that ran out on 2026-12-25; now they are a rule. A visit on the
    Friday after Thanksgiving must be confirmed by the close of Wednesday, not of the closed Thursday."""
    from medspa.domain.engine import confirmation_schedule
    from tests.support.packs import SPA406

    thursday = thanksgiving(year)
    assert SPA406.business_hours.on(thursday) is None
    assert SPA406.business_hours.on(thursday - timedelta(days=1)) is not None
    friday_visit = visit(SPA406, datetime.combine(thursday + timedelta(days=1), time(11)))
    deadline = confirmation_schedule(SPA406, friday_visit, datetime(year, 1, 1, tzinfo=SPA406.zone)).deadline
    assert deadline.astimezone(SPA406.zone).replace(tzinfo=None) == datetime.combine(
        thursday - timedelta(days=1), time(17))
    christmas = date(year, 12, 25)
    observed = christmas + timedelta(days={5: -1, 6: 1}.get(christmas.weekday(), 0))
    assert SPA406.business_hours.on(observed) is None
    assert SPA406.business_hours.on(last_monday_of_may(year)) is None
    veterans_day = date(year, 11, 11)
    if veterans_day.weekday() < 5:  # a federal holiday, but not one of the six: 406 works that day
        assert SPA406.business_hours.on(veterans_day) is not None
