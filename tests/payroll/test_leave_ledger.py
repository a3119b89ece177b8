"""The earned-leave ledger (issue 15): accrual per calendar month employed throughout, approved earned
leave taken, the carry-forward cap at each calendar year's end, each month by the policy row in force at
its end; and the full and final settlement taking its balance unless HR overrides it with a reason.
The expected figures are folded here year by year, independently of the ledger's SQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro.commands import InvalidParams
from ombaro.payroll import leave_ledger
from ombaro.payroll.rates import RateBook
from tests.factories.accounts import client_for, make_account
from tests.factories.payroll import add_leave, add_structure, new_employee
from tests.payroll.helpers import run_final_settlement


def ledger_of(engine: Engine, employee: Any, on: dt.date, book: RateBook | None = None) -> list[leave_ledger.LeaveYear]:
    with Session(engine) as session:
        return leave_ledger.ledgers(session, [employee], on, book).get(employee, [])


def test_whole_months_accrue_and_the_carry_forward_cap_lapses_the_rest(engine: Engine) -> None:
    # Joined 2 March 2021: March is not employed throughout; April-December 2021 is 9 months x 1.5 = 13.5.
    employee = new_employee(engine, joining=dt.date(2021, 3, 2))
    add_leave(engine, employee, dt.date(2022, 12, 30), dt.date(2023, 1, 2))  # 2 days in 2022, 2 in 2023
    add_leave(engine, employee, dt.date(2023, 5, 1), dt.date(2023, 5, 5), status="pending")  # not taken
    add_leave(engine, employee, dt.date(2023, 6, 1), dt.date(2023, 6, 3), leave_type="sick")  # not earned
    years = ledger_of(engine, employee, dt.date(2024, 7, 30))
    assert [(y.year, y.opening, y.lapsed, y.accrued, y.taken, y.closing) for y in years] == [
        (2021, 0, 0, D("13.5"), 0, D("13.5")),
        (2022, D("13.5"), 0, 18, 2, D("29.5")),
        (2023, D("29.5"), 0, 18, 2, D("45.5")),
        (2024, 45, D("0.5"), 9, 0, 54),  # 45.5 carried: 45 (the cap), 0.5 lapses; January-June (July not over)
    ]


def test_a_month_counts_only_when_employed_on_its_first_and_last_day(engine: Engine) -> None:
    first = new_employee(engine, joining=dt.date(2024, 1, 1), last_day=dt.date(2024, 3, 31))
    late = new_employee(engine, joining=dt.date(2024, 1, 2), last_day=dt.date(2024, 3, 30))
    assert leave_ledger.balance(ledger_of(engine, first, dt.date(2025, 1, 1))) == D("4.5")  # 3 months
    assert leave_ledger.balance(ledger_of(engine, late, dt.date(2025, 1, 1))) == D("1.5")  # February only


def test_each_month_takes_the_policy_in_force_at_its_end(engine: Engine) -> None:
    employee = new_employee(engine, joining=dt.date(2024, 1, 1))
    with Session(engine) as session:
        rows = [
            (k, s, f, d)
            for k, s, f, d in session.execute(text("SELECT kind, scope, effective_from, data FROM statutory_rates"))
        ]
    book = RateBook(
        [*rows, ("earned_leave", "IN", dt.date(2024, 3, 31), {"accrual_per_month": "2", "carry_forward_max": "10"})]
    )
    years = ledger_of(engine, employee, dt.date(2025, 2, 28), book)
    # January, February at 1.5; March (ending on the new row's day) to December at 2: 3 + 20 = 23;
    # 10 carried (the cap in force on 31 December 2024), 13 lapse; January and February 2025: 4.
    assert [(y.year, y.accrued, y.lapsed, y.closing) for y in years] == [(2024, 23, 0, 23), (2025, 4, 13, 14)]


def fold(joined: dt.date, until: dt.date, taken: dict[int, int], accrual: D, cap: D) -> D:
    """The ledger by its definition: month by month, a whole month employed accrues; at each year's end
    the year's leave taken comes off and at most `cap` is carried into the next."""
    balance, day = D(0), dt.date(joined.year, joined.month, 1)
    while day <= until:
        following = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
        if joined <= day and following - dt.timedelta(days=1) <= until:
            balance += accrual
        if day.month == 12 and following <= until:
            balance = min(balance - taken.get(day.year, 0), cap)
        day = following
    return balance - taken.get(until.year, 0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    joined=st.dates(dt.date(2019, 1, 1), dt.date(2023, 12, 31)),
    months=st.integers(1, 60),
    leave=st.lists(st.tuples(st.integers(0, 1500), st.integers(1, 10)), max_size=4),
)
def test_the_balance_is_the_year_by_year_fold(
    engine: Engine, joined: dt.date, months: int, leave: list[tuple[int, int]]
) -> None:
    until = joined + dt.timedelta(days=months * 30)
    employee = new_employee(engine, joining=joined, last_day=until)
    taken: dict[int, int] = {}
    used: set[dt.date] = set()
    for offset, length in leave:
        start = joined + dt.timedelta(days=offset)
        days = {start + dt.timedelta(days=i) for i in range(length)}
        if days & used:
            continue  # requests do not overlap (the leave API refuses it)
        used |= days
        add_leave(engine, employee, start, start + dt.timedelta(days=length - 1))
        for day in days:
            if day <= until:
                taken[day.year] = taken.get(day.year, 0) + 1
    got = leave_ledger.balance(ledger_of(engine, employee, dt.date(2030, 1, 1)))
    assert got == fold(joined, until, taken, D("1.5"), D(45))


def test_the_settlement_takes_the_ledger_unless_hr_overrides_it_with_a_reason(engine: Engine, app: Any) -> None:
    # Joined 1 January 2026, leaving 31 December 2026: 12 x 1.5 = 18 days, 3 taken: 15.
    employee = new_employee(engine, joining=dt.date(2026, 1, 1), last_day=dt.date(2026, 12, 31))
    add_structure(engine, employee, dt.date(2026, 1, 1), basic="26000", esi=False)
    add_leave(engine, employee, dt.date(2026, 8, 1), dt.date(2026, 8, 3))
    done = run_final_settlement(engine, {"employee_id": str(employee)})
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert isinstance(result, dict)
    assert (result["earned_leave_days"], result["ledger_leave_days"], result["leave_override_reason"]) == (
        "15.00",
        "15.00",
        None,
    )
    assert result["leave_encashment"] == "15000.00"  # 15 x 26,000 / 26
    assert result["explanation"]["earned_leave"]["source"] == "ledger"
    assert result["explanation"]["earned_leave"]["ledger"][-1]["closing"] == "15.00"

    overridden = run_final_settlement(
        engine,
        {
            "employee_id": str(employee),
            "earned_leave_days": "20",
            "leave_override_reason": "5 days granted by the director",
        },
    )
    assert overridden["status"] == "succeeded", overridden
    shown = overridden["result"]
    assert isinstance(shown, dict)
    assert (shown["earned_leave_days"], shown["ledger_leave_days"], shown["leave_override_reason"]) == (
        "20.00",
        "15.00",
        "5 days granted by the director",
    )
    assert shown["leave_encashment"] == "20000.00"

    hr = make_account(engine, "hr_department")
    refused = client_for(app, hr).post(
        "/api/v1/payroll/final-settlements", json={"employee_id": str(employee), "earned_leave_days": "20"}
    )
    assert refused.status_code == 422 and refused.content_type == "application/problem+json"
    assert "leave_override_reason" in str(refused.json["errors"]), refused.json
    with pytest.raises(InvalidParams, match="leave_override_reason"):  # a blank reason is none
        run_final_settlement(
            engine, {"employee_id": str(employee), "earned_leave_days": "20", "leave_override_reason": "  "}
        )


def test_the_ledger_is_shown_to_the_employee_and_hr_only(app: Any, engine: Engine) -> None:
    hr, mine, other = (make_account(engine, role) for role in ("hr_department", "employee", "employee"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE employees SET joining_date = '2025-01-01' WHERE id = :id"), {"id": mine.id})
    add_leave(engine, mine.id, dt.date(2025, 3, 3), dt.date(2025, 3, 4))
    url = f"/api/v1/payroll/leave-ledger/{mine.id}?on=2025-06-30"
    for who in (hr, mine):
        shown = client_for(app, who).get(url)
        assert shown.status_code == 200, shown.json
        assert shown.json["balance"] == "7.00"  # January-June: 6 x 1.5 = 9, less 2 days
        assert shown.json["years"] == [
            {"year": 2025, "opening": "0.00", "lapsed": "0.00", "accrued": "9.00", "taken": "2.00", "closing": "7.00"}
        ]
    hidden = client_for(app, other).get(url)
    assert hidden.status_code == 404 and hidden.content_type == "application/problem+json"
    assert client_for(app, hr).get(f"/api/v1/payroll/leave-ledger/{mine.id}?on=2024-12-31").status_code == 404
    assert client_for(app, hr).get(f"/api/v1/payroll/leave-ledger/{mine.id}").status_code == 422
