"""Properties of the calculation for random inputs (Hypothesis): the payslip adds up to the paisa,
prorating never pays more than the full month, and a re-run of a month changes nothing."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro.payroll.calculation import (
    COMPONENTS,
    EmployeeMonth,
    History,
    PastMonth,
    Payslip,
    Period,
    Structure,
    compute_or_reason,
)
from ombaro.payroll.rates import RateBook
from tests.factories.payroll import add_structure, mark, new_employee
from tests.payroll.helpers import Driver

amounts = st.decimals(min_value=0, max_value=300_000, places=2, allow_nan=False, allow_infinity=False)
periods = st.builds(Period, st.integers(2024, 2029), st.integers(1, 12))


@pytest.fixture(scope="module")
def book(engine: Engine) -> RateBook:
    with Session(engine) as session:
        return RateBook.load(session)


@st.composite
def employee_months(draw: st.DrawFn) -> tuple[EmployeeMonth, Period]:
    period = draw(periods)
    joining = draw(st.dates(period.start - dt.timedelta(days=400), period.end))
    last_day = draw(st.none() | st.dates(max(joining, period.start), period.end + dt.timedelta(days=60)))
    starts = sorted(set(draw(st.lists(st.dates(period.start - dt.timedelta(days=90), period.end), min_size=1,
                                      max_size=3))))
    structures = tuple(Structure(
        start, *(draw(amounts) for _ in COMPONENTS), pf_applicable=draw(st.booleans()),
        esi_applicable=draw(st.booleans()), pt_state=draw(st.sampled_from([None, "MH", "KA", "TN", "WB"])),
        overtime_eligible=draw(st.booleans())) for start in starts)
    days = [period.start + dt.timedelta(days=n) for n in range(period.days)]
    lop = {d: draw(st.sampled_from([D("1.0"), D("0.5")])) for d in draw(st.lists(st.sampled_from(days), unique=True))}
    overtime = {d: draw(st.decimals(min_value="0.01", max_value="6", places=2))
                for d in draw(st.lists(st.sampled_from(days), unique=True, max_size=10)) if d not in lop}
    history = History(tuple(PastMonth(period.index - n, draw(amounts), draw(st.decimals(0, 20_000, places=2)))
                            for n in range(1, draw(st.integers(0, 6)) + 1)))
    employee = EmployeeMonth(
        employee_id=uuid.uuid4(), code="P1", name="Property", joining_date=joining, last_working_date=last_day,
        structures=structures, lop=lop, overtime=overtime, gender=draw(st.sampled_from(["male", "female", None])),
        bonus=draw(st.decimals(0, 50_000, places=2)), loan_emi=draw(st.decimals(0, 5_000, places=2)),
        salary_advance=draw(st.decimals(0, 5_000, places=2)), history=history)
    return employee, period


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(employee_months())
def test_net_is_gross_less_deductions_to_the_paisa(book: RateBook, case: tuple[EmployeeMonth, Period]) -> None:
    employee, period = case
    outcome = compute_or_reason(employee, period, book)
    if not isinstance(outcome, Payslip):
        assume(outcome[0] in ("NegativeNet", "NoCompensation", "PayrollComputationError", "MissingRate"))
        return
    record = outcome.record_values()
    lines = [record["basic_salary"], *map(D, record["allowances"].values()), record["overtime_amount"], record["bonus"]]
    assert all(v == v.quantize(D("0.01")) and v >= 0 for v in lines)
    assert sum(lines, D(0)) == record["gross_salary"]
    assert sum(map(D, record["deductions"].values()), D(0)) == record["total_deductions"]
    assert record["gross_salary"] - record["total_deductions"] == record["net_salary"] >= 0
    assert D(0) <= outcome.paid_days <= period.days


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(employee_months())
def test_prorating_never_pays_more_than_the_full_month(book: RateBook, case: tuple[EmployeeMonth, Period]) -> None:
    employee, period = case
    outcome = compute_or_reason(employee, period, book)
    assume(isinstance(outcome, Payslip))
    assert isinstance(outcome, Payslip)
    for component in COMPONENTS:
        highest = max(getattr(s, component) for s in employee.structures)
        assert outcome.earnings[component] <= highest
    prorated = sum((outcome.earnings[c] for c in COMPONENTS), D(0))
    assert prorated <= max(s.monthly_gross() for s in employee.structures)


statuses = st.sampled_from(["present", "late", "absent", "half_day", "work_from_home", "leave", "holiday"])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(days=st.dictionaries(st.integers(1, 30), st.tuples(statuses, st.decimals("3", "11", places=2)), max_size=12),
       basic=st.decimals(5_000, 200_000, places=2))
def test_a_rerun_changes_nothing(engine: Engine, days: dict[int, tuple[str, D]], basic: D) -> None:
    employee = new_employee(engine, joining=dt.date(2025, 1, 1))
    add_structure(engine, employee, dt.date(2025, 1, 1), basic=str(basic), hra="5000", pt_state="TN")
    for day, (status, hours) in days.items():
        mark(engine, employee, dt.date(2029, 9, day), status, str(hours))
    driver = Driver(engine)

    def snapshot() -> list[dict]:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(
                "SELECT s.*, d.explanation, d.paid_days FROM salary_records AS s JOIN salary_record_details AS d "
                "ON d.salary_record_id = s.id WHERE s.employee_id = :e"), {"e": employee}).mappings()]

    driver.run(2029, 9, employee_ids=[employee])
    first = snapshot()
    assert len(first) == 1
    driver.run(2029, 9, employee_ids=[employee])
    assert snapshot() == first  # every column, updated_at included
