"""Payroll rules against the law's own formulas (issue 15): each expected figure is computed here from
the provision, in integer paise with its own half-up rounding, independently of the engine's code
path (no ombaro.money, no rates parsing), at the boundaries each rule has.

Provisions: Factories Act s.59 (overtime at twice the ordinary rate of wages, basic plus allowances);
EPF Act s.2(b)/s.6 as the Supreme Court read it on 28 February 2019 and the Code on Social Security
2020 s.2(88) (PF wages); ESI (Central) Rules r.51 (no employee's share at an average daily wage up to
Rs 176; an annual bonus is not a wage); Payment of Wages Act s.7(3) (deductions at most 50% of the
wages, 75% with co-operative society dues). The rows are the ones migrations 0006 and 0018 seed."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro.payroll import preflight, records
from ombaro.payroll.calculation import EmployeeMonth, Payslip, Period, Structure, compute
from ombaro.payroll.rates import RateBook
from tests.factories.payroll import add_structure, new_employee
from tests.payroll.helpers import Driver, record_of

COMPONENTS = ("basic", "hra", "transport", "medical", "special", "other")
JUNE_2027 = Period(2027, 6)  # 30 days; PF under the Code's wage definition, ESI at 0.75% / 3.25%


def half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator (both >= 0) to the nearest whole number, a half going up."""
    whole, rest = divmod(numerator, denominator)
    return whole + (1 if 2 * rest >= denominator else 0)


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def rupees(paise: int) -> D:
    return D(paise) / 100


@pytest.fixture(scope="module")
def book(engine: Engine) -> RateBook:
    with Session(engine) as session:
        return RateBook.load(session)


def person(structure: Structure, *, joining: dt.date = dt.date(2015, 1, 1), **kwargs: object) -> EmployeeMonth:
    return EmployeeMonth(employee_id=uuid.uuid4(), code="LAW", name="Law", joining_date=joining,
                         last_working_date=None, structures=(structure,), **kwargs)  # type: ignore[arg-type]


def structure(paise: dict[str, int], **flags: object) -> Structure:
    return Structure(dt.date(2015, 1, 1), **{c: rupees(paise.get(c, 0)) for c in COMPONENTS},  # type: ignore[arg-type]
                     **flags)


# --- overtime: Factories Act s.59, every line exact and rounded once ------------------------------------------


@pytest.mark.parametrize(("basic", "hours", "paid"), [("36500", "15.99", "5611.88"), ("20000.40", "1.30", "250.01")])
def test_the_issues_half_paisa_ties_round_up(book: RateBook, basic: str, hours: str, paid: str) -> None:
    # 36,500 x 2 / 208 x 15.99 = 5,611.875 exactly; 20,000.40 x 2 / 208 x 1.30 = 250.005 exactly.
    employee = person(Structure(dt.date(2020, 1, 1), D(basic), pf_applicable=False, esi_applicable=False),
                      overtime={dt.date(2027, 6, 2): D(hours)})
    slip = compute(employee, JUNE_2027, book)
    assert slip.earnings["overtime"] == D(paid)


def test_an_employee_who_joined_last_century_is_paid(book: RateBook) -> None:
    slip = compute(person(Structure(dt.date(1998, 7, 1), D("50000")), joining=dt.date(1998, 7, 1)), JUNE_2027, book)
    assert slip.gross == D("50000.00") and slip.explanation["tds"]["months_without_record"] == 2  # April, May


def test_overtime_is_on_basic_and_allowances_not_bonus(book: RateBook) -> None:
    employee = person(Structure(dt.date(2020, 1, 1), D("20800"), hra=D("10400"), special=D("5200"),
                                pf_applicable=False, esi_applicable=False),
                      overtime={dt.date(2027, 6, 2): D("2")}, bonus=D("50000"))
    slip = compute(employee, JUNE_2027, book)
    # ordinary rate of wages 36,400 / 26 / 8 = 175 an hour; twice that for 2 hours = 700 (the bonus is not in it).
    assert slip.earnings["overtime"] == D("700.00")
    assert book.overtime(JUNE_2027.start).basis == COMPONENTS  # the seeded row, corrected by 0018


paise = st.integers(min_value=0, max_value=30_000_000)  # up to Rs 3 lakh a component


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(monthly=st.fixed_dictionaries({c: paise for c in COMPONENTS}),
       hours=st.lists(st.integers(1, 1600), min_size=1, max_size=5),
       lop=st.lists(st.sampled_from([1, 2]), max_size=8))
def test_every_earning_is_the_exact_figure_rounded_once(book: RateBook, monthly: dict[str, int], hours: list[int],
                                                        lop: list[int]) -> None:
    """Components: monthly x paid days / 30; overtime: 2 x (sum of components) / 26 / 8 x hours; each
    computed from whole paise and hundredths of an hour and rounded half up once."""
    lop_days = {dt.date(2027, 6, 10 + i): D(w) / 2 for i, w in enumerate(lop)}  # 2: a whole day, 1: a half
    overtime = {dt.date(2027, 6, 1 + i): D(h) / 100 for i, h in enumerate(hours)}
    slip = compute(person(structure(monthly, pf_applicable=False, esi_applicable=False), lop=lop_days,
                          overtime=overtime), JUNE_2027, book)
    paid_halves = 60 - sum(lop)
    for component in COMPONENTS:
        assert slip.earnings[component] == rupees(half_up(monthly[component] * paid_halves, 60)), component
    assert slip.earnings["overtime"] == rupees(half_up(2 * sum(monthly.values()) * sum(hours), 26 * 8 * 100))


# --- PF wages ------------------------------------------------------------------------------------------------


def pf_statute(earned: dict[str, int], on: dt.date) -> tuple[int, int]:
    """(PF wage in half-paise, employee's PF in rupees) by the definition in force on `on`: basic only
    (EPF Act, before the 2019 ruling); basic and the universally paid special allowance (the ruling);
    from the Code: all remuneration less HRA, conveyance, medical, overtime and bonus, plus whatever
    those exceed half of all remuneration by. Contributions: 12% of the wage up to Rs 15,000."""
    if on < dt.date(2019, 3, 1):
        wage2 = 2 * earned["basic"]
    elif on < dt.date(2025, 11, 21):
        wage2 = 2 * (earned["basic"] + earned["special"])
    else:
        everything = sum(earned.values())
        excluded = sum(earned[c] for c in ("hra", "transport", "medical", "overtime", "bonus"))
        wage2 = 2 * (everything - excluded) + max(0, 2 * excluded - everything)
    capped2 = min(wage2, 2 * 1_500_000)
    return wage2, half_up(capped2 * 12, 2 * 100 * 100)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(monthly=st.fixed_dictionaries({c: st.integers(0, 4_000_000) for c in COMPONENTS}),
       incentive=st.integers(0, 1_000_000), bonus=st.integers(0, 5_000_000), hours=st.integers(0, 2000),
       period=st.sampled_from([Period(2024, 5), Period(2025, 11), Period(2025, 12), Period(2027, 6)]))
def test_pf_is_twelve_percent_of_the_wage_the_law_of_the_month_defines(
        book: RateBook, monthly: dict[str, int], incentive: int, bonus: int, hours: int, period: Period) -> None:
    slip = compute(person(structure(monthly, esi_applicable=False), incentive=rupees(incentive), bonus=rupees(bonus),
                          overtime={period.start: D(hours) / 100}), period, book)
    earned = {**{c: int(slip.earnings[c] * 100) for c in slip.earnings}}
    assert earned["incentive"] == incentive and earned["bonus"] == bonus
    wage2, pf = pf_statute(earned, period.start)
    assert slip.deductions["pf"] == D(pf)
    assert Fraction(D(slip.explanation["pf"]["pf_wage"])) == Fraction(wage2, 200)
    # EPS: 8.33% of the wage up to the ceiling, to the rupee; the employer's 12% less EPS to EPF.
    capped2 = min(wage2, 2 * 1_500_000)
    assert slip.employer["pf_eps"] == D(half_up(capped2 * 833, 2 * 100 * 100 * 100))
    assert slip.employer["pf_eps"] + slip.employer["pf_epf"] == D(half_up(capped2 * 12, 2 * 100 * 100))


def test_pf_wage_at_the_codes_fifty_percent_boundary(book: RateBook) -> None:
    # Exclusions exactly half of remuneration: nothing added back; one paisa more: that paisa's half counts.
    at = compute(person(Structure(dt.date(2020, 1, 1), D("6000"), hra=D("6000"), esi_applicable=False)), JUNE_2027,
                 book)
    assert D(at.explanation["pf"]["pf_wage"]) == D("6000") and at.deductions["pf"] == D("720.00")
    above = compute(person(Structure(dt.date(2020, 1, 1), D("6000"), hra=D("6000.01"), esi_applicable=False)),
                    JUNE_2027, book)
    assert D(above.explanation["pf"]["pf_wage"]) == D("6000.005")  # 12,000.01 / 2: the excess over half counts
    assert above.deductions["pf"] == D("720.00")
    # Mostly allowances: wages are half of everything. 10,000 basic + 30,000 HRA -> 20,000, capped 15,000.
    heavy = compute(person(Structure(dt.date(2020, 1, 1), D("10000"), hra=D("30000"), esi_applicable=False)),
                    JUNE_2027, book)
    assert D(heavy.explanation["pf"]["pf_wage"]) == D("20000") and heavy.deductions["pf"] == D("1800.00")


def test_pf_definition_changes_with_the_month(book: RateBook) -> None:
    # Before the 2019 ruling the seeded row is basic only (no month that early has the other rates).
    before = book.pf(dt.date(2019, 2, 28))
    assert (before.definition, before.wage_components) == ("components", ("basic",))
    pay = Structure(dt.date(2015, 1, 1), D("4000"), hra=D("6000"), transport=D("2000"), special=D("1000"),
                    esi_applicable=False)
    found = {p.label(): compute(person(pay, joining=dt.date(2015, 1, 1)), p, book)
             for p in (Period(2024, 5), Period(2025, 11), Period(2025, 12))}
    assert {k: v.deductions["pf"] for k, v in found.items()} == {
        "2024-05": D("600.00"),  # 12% of basic + the universally paid special allowance, 5,000 (the ruling)
        "2025-11": D("600.00"),  # the Code came into force on 21 November: December is its first month
        "2025-12": D("780.00"),  # the Code: of 13,000, exclusions 8,000 exceed half by 1,500: 5,000 + 1,500
    }
    assert found["2025-12"].explanation["rates"]["pf"] == "2025-11-21"
    assert found["2025-11"].explanation["rates"]["pf"] == "2019-03-01"


# --- ESI ----------------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(gross=st.integers(300_000, 800_000), lop=st.lists(st.sampled_from([1, 2]), max_size=10),
       incentive=st.integers(0, 100_000), bonus=st.integers(0, 500_000))
def test_esi_employee_share_is_exempt_at_an_average_daily_wage_up_to_176(
        book: RateBook, gross: int, lop: list[int], incentive: int, bonus: int) -> None:
    lop_days = {dt.date(2027, 6, 10 + i): D(w) / 2 for i, w in enumerate(lop)}
    slip = compute(person(structure({"basic": gross}, pf_applicable=False), lop=lop_days,
                          incentive=rupees(incentive), bonus=rupees(bonus)), JUNE_2027, book)
    paid_halves = 60 - sum(lop)
    wage = half_up(gross * paid_halves, 60) + incentive  # the incentive is a wage; the annual bonus is not
    exempt = 2 * wage <= 17_600 * paid_halves  # wage / (paid_halves / 2) <= Rs 176
    assert slip.deductions["esi"] == (D(0) if exempt else D(ceil_div(wage * 75, 100 * 100 * 100)))
    assert slip.employer["esi"] == D(ceil_div(wage * 325, 100 * 100 * 100))  # the employer pays either way


def test_esi_exemption_boundary_and_incentives(book: RateBook) -> None:
    at = compute(person(Structure(dt.date(2020, 1, 1), D("5280"), pf_applicable=False)), JUNE_2027, book)
    assert at.deductions["esi"] == D(0) and at.employer["esi"] == D("172.00")  # 5,280 / 30 = 176.00 a day
    above = compute(person(Structure(dt.date(2020, 1, 1), D("5280.30"), pf_applicable=False)), JUNE_2027, book)
    assert above.deductions["esi"] == D("40.00")  # 176.01 a day: 0.75% of 5,280.30 = 39.60, next rupee
    with_incentive = compute(person(Structure(dt.date(2020, 1, 1), D("18000"), pf_applicable=False),
                                    incentive=D("2000"), bonus=D("10000")), JUNE_2027, book)
    assert with_incentive.explanation["esi"]["wage"] == "20000.00"  # 18,000 + 2,000 incentive, not the bonus
    assert with_incentive.deductions["esi"] == D("150.00")


# --- Payment of Wages Act s.7(3) -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(basic=st.integers(1_000_000, 5_000_000), emi=st.integers(0, 4_000_000), dues=st.integers(0, 1_000_000),
       bonus=st.integers(0, 1_000_000))
def test_a_month_whose_deductions_exceed_the_limit_is_held(book: RateBook, basic: int, emi: int, dues: int,
                                                            bonus: int) -> None:
    employee = person(structure({"basic": basic}, esi_applicable=False), loan_emi=rupees(emi),
                      cooperative_dues=rupees(dues), bonus=rupees(bonus))
    try:
        slip = compute(employee, JUNE_2027, book)
    except Exception as exc:  # deductions beyond the whole gross: a failure, not a hold
        assert type(exc).__name__ == "NegativeNet"
        return
    wages = basic  # the annual bonus is not wages
    total = sum(int(v * 100) for v in slip.deductions.values())
    percent = 75 if dues else 50
    assert (slip.hold_reason is not None) == (total * 100 > wages * percent)
    assert slip.record_values()["status"] == ("hold" if slip.hold_reason else "pending")


def test_the_limit_itself_is_paid(book: RateBook) -> None:
    def slip(emi: str, dues: str = "0") -> Payslip:
        return compute(person(Structure(dt.date(2020, 1, 1), D("10000"), pf_applicable=False, esi_applicable=False),
                              loan_emi=D(emi), cooperative_dues=D(dues)), JUNE_2027, book)

    assert slip("5000").hold_reason is None  # exactly 50%
    assert "50%" in (slip("5000.01").hold_reason or "")
    assert slip("7400", "100").hold_reason is None  # exactly 75% with co-operative dues
    held = slip("7400.01", "100").hold_reason
    assert held is not None and "75%" in held and "s.7(3)" in held


def test_a_held_record_is_written_as_hold_listed_in_preflight_and_held_again_after_release(
        engine: Engine) -> None:
    employee = new_employee(engine, joining=dt.date(2029, 1, 1))
    add_structure(engine, employee, dt.date(2029, 1, 1), basic="20000", esi=False)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO payroll_adjustments (employee_id, year, month, kind, amount) "
                          "VALUES (:e, 2030, 5, 'loan_emi', 9000)"), {"e": employee})
    driver = Driver(engine)
    driver.run(2030, 5, employee_ids=[employee])
    record = record_of(engine, employee, 2030, 5)
    # PF 1,800 + loan 9,000 = 10,800 > 50% of 20,000.
    assert record is not None and record["status"] == "hold" and "s.7(3)" in record["notes"]
    with Session(engine) as session:
        checks = preflight.preflight(session, Period(2030, 5), as_of=dt.date(2030, 5, 31))
    assert str(employee) in {h["employee_id"] for h in checks["issues"]["held"]}
    with Session(engine) as session, session.begin():
        records.release(session, record["id"])
    driver.run(2030, 5, employee_ids=[employee])
    assert record_of(engine, employee, 2030, 5)["status"] == "hold"  # type: ignore[index]
    with engine.begin() as conn:
        conn.execute(text("UPDATE payroll_adjustments SET amount = 8000 WHERE employee_id = :e"), {"e": employee})
    with Session(engine) as session, session.begin():
        records.release(session, record["id"])
    driver.run(2030, 5, employee_ids=[employee])
    released = record_of(engine, employee, 2030, 5)
    assert released is not None and released["status"] == "pending" and released["notes"] is None  # 9,800: 49%


def test_work_hours_are_exact_microseconds_rounded_once() -> None:
    from ombaro.attendance import work_hours

    start = dt.datetime(2027, 6, 2, 9, 0, tzinfo=dt.UTC)
    # 18 seconds is 0.005 h exactly: half a hundredth goes up; a microsecond less does not.
    assert work_hours(start, start + dt.timedelta(seconds=18)) == D("0.01")
    assert work_hours(start, start + dt.timedelta(seconds=17, microseconds=999_999)) == D("0.00")
    assert work_hours(start, start + dt.timedelta(hours=9, minutes=59, seconds=42)) == D("10.00")  # 9.995 h


def test_pf_on_wages_above_the_ceiling_when_the_policy_says_so(engine: Engine) -> None:
    """The ceiling is an option of the dated row: a row with cap_wages false contributes on the whole
    wage (para 26A's joint option); the pension part stays on wages up to Rs 15,000."""
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text("SELECT kind, scope, effective_from, data FROM statutory_rates"))]
    uncapped = {"employee_rate": "12", "employer_rate": "12", "eps_rate": "8.33", "wage_ceiling": "15000",
                "rounding": "rupee", "wage_definition": "code_2020", "excluded_components": ["hra"],
                "cap_wages": False}
    book = RateBook([*rows, ("pf", "IN", dt.date(2027, 6, 1), uncapped)])
    slip = compute(person(Structure(dt.date(2015, 1, 1), D("25000"), hra=D("5000"), esi_applicable=False)),
                   JUNE_2027, book)
    assert slip.deductions["pf"] == D("3000.00")  # 12% of 25,000
    assert slip.employer == {"pf_eps": D("1250.00"), "pf_epf": D("1750.00")}  # EPS 8.33% of 15,000 = 1,249.50
    before = compute(person(Structure(dt.date(2015, 1, 1), D("25000"), hra=D("5000"), esi_applicable=False)),
                     Period(2027, 5), book)
    assert before.deductions["pf"] == D("1800.00")  # May: the capped row
