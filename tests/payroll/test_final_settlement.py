"""Full and final settlement (issue 15): gratuity under the Payment of Gratuity Act at its boundaries
(s.4(1) five years' service, s.2A(2) a last year of 240 days, s.4(2) a part year in excess of six
months, s.4(3) the ceiling as dated data), leave encashment and notice-pay recovery by the company's
policy; the figures by hand beside each check; and the command recording a leaver's settlement."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.config import load_settings
from ombaro.payroll import final_settlement, runs
from ombaro.payroll.calculation import Structure
from ombaro.payroll.commands import FINAL_SETTLEMENT_KIND
from ombaro.payroll.errors import PayrollConflict
from ombaro.payroll.final_settlement import Leaver, settle
from ombaro.payroll.rates import RateBook
from tests.factories.accounts import client_for, make_account
from tests.factories.payroll import add_structure, new_employee
from tests.payroll.helpers import Driver, run_final_settlement


@pytest.fixture(scope="module")
def book(engine: Engine) -> RateBook:
    with Session(engine) as session:
        return RateBook.load(session)


def leaver(joined: dt.date, last_day: dt.date, basic: str = "26000", **kwargs: object) -> Leaver:
    structure = Structure(joined, D(basic), hra=D("13000"))
    return Leaver(uuid.uuid4(), joined, last_day, structure, **kwargs)  # type: ignore[arg-type]


JOINED = dt.date(2020, 1, 1)


@pytest.mark.parametrize(("last_day", "years", "days", "counted", "gratuity"), [
    (dt.date(2024, 8, 26), 4, 239, 5, D("0.00")),  # 4 years 239 days: not five years' service
    (dt.date(2024, 8, 27), 4, 240, 5, D("75000.00")),  # 4 years 240 days: s.2A(2); 26,000 x 15 x 5 / 26
    (dt.date(2024, 12, 31), 5, 0, 5, D("75000.00")),  # exactly five years
])
def test_gratuity_after_five_years_or_four_and_240_days(book: RateBook, last_day: dt.date, years: int, days: int,
                                                        counted: int, gratuity: D) -> None:
    result = settle(leaver(JOINED, last_day), book)
    assert (result.service.years, result.service.days, result.service.counted_years) == (years, days, counted)
    assert result.gratuity == gratuity


@pytest.mark.parametrize(("last_day", "counted", "gratuity"), [
    (dt.date(2025, 6, 30), 10, D("150000.00")),  # 10 years and exactly six months: the part year does not count
    (dt.date(2025, 7, 1), 11, D("165000.00")),  # a day more: in excess of six months, a year
])
def test_a_part_year_counts_only_beyond_six_months(book: RateBook, last_day: dt.date, counted: int,
                                                   gratuity: D) -> None:
    result = settle(leaver(dt.date(2015, 1, 1), last_day), book)
    assert result.service.counted_years == counted and result.gratuity == gratuity


@pytest.mark.parametrize(("last_day", "ceiling"), [
    (dt.date(2018, 3, 28), D("1000000.00")),  # the 2010 ceiling, the day before the 2018 notification
    (dt.date(2018, 3, 29), D("2000000.00")),  # Rs 20 lakh from 29 March 2018
])
def test_gratuity_is_capped_at_the_ceiling_in_force(book: RateBook, last_day: dt.date, ceiling: D) -> None:
    # 5,00,000 x 15 x 20 / 26 = 57,69,230.77: beyond either ceiling.
    result = settle(leaver(dt.date(1998, 1, 1), last_day, basic="500000"), book)
    assert result.service.counted_years == 20 and result.gratuity == ceiling
    assert result.explanation["gratuity"]["capped"] is True


def test_gratuity_is_exact_and_rounded_once(book: RateBook) -> None:
    # 30,001 x 15 x 7 / 26 = 31,50,105 / 26 = 1,21,157.8846... -> 1,21,157.88 (not 30,001 / 26 x 15 x 7).
    result = settle(leaver(dt.date(2017, 1, 1), dt.date(2023, 12, 31), basic="30001"), book)
    assert result.gratuity == D("121157.88")


def test_leave_encashment_and_notice_shortfall(book: RateBook) -> None:
    result = settle(leaver(JOINED, dt.date(2024, 8, 20), earned_leave_days=D("45.5"),
                           resignation_date=dt.date(2024, 8, 1)), book)
    # Encashment: 45.5 days x basic 26,000 / 26 = 45,500. Notice: 1-20 August served, 10 of 30 days short,
    # recovered at the gross 39,000 / 30 a day = 13,000.
    assert result.leave_encashment == D("45500.00")
    assert result.notice_shortfall_days == 10 and result.notice_recovery == D("13000.00")
    assert result.net == result.gratuity + D("45500.00") - D("13000.00")


run_command = run_final_settlement


def test_the_command_records_a_leavers_settlement(engine: Engine, driver: Driver) -> None:
    employee = new_employee(engine, joining=dt.date(2019, 4, 1), last_day=dt.date(2027, 3, 12))
    add_structure(engine, employee, dt.date(2019, 4, 1), basic="26000", hra="13000", esi=False)
    done = run_command(engine, {"employee_id": str(employee), "earned_leave_days": "20",
                                "leave_override_reason": "leave before the ledger was kept",
                                "resignation_date": "2027-02-20"})
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert isinstance(result, dict)
    # Service 1 April 2019 - 12 March 2027: 7 years and 346 days (1 April 2026 - 12 March 2027), counted 8:
    # 26,000 x 15 x 8 / 26 = 1,20,000.
    assert (result["service_years"], result["service_days"], result["counted_years"]) == (7, 346, 8)
    assert result["gratuity"] == "120000.00"
    assert result["leave_encashment"] == "20000.00"  # 20 x 26,000 / 26
    # Notice 20 February - 12 March: 21 days served, 9 short at 39,000 / 30 = 1,300 a day.
    assert result["notice_shortfall_days"] == 9 and result["notice_recovery"] == "11700.00"
    assert result["net_amount"] == "128300.00"
    # The salary to the last working day: March 2027 not run yet, so what the run will pay (12/31 of the month).
    salary = result["explanation"]["salary"]
    assert salary["status"] == "not yet run" and salary["paid_days"] == "12.00"
    assert D(salary["gross"]) == D("15096.78")  # 26,000 x 12/31 = 10,064.52 + 13,000 x 12/31 = 5,032.26

    driver.run(2027, 3, employee_ids=[employee])
    again = run_command(engine, {"employee_id": str(employee), "earned_leave_days": "20",
                                 "leave_override_reason": "leave before the ledger was kept",
                                 "resignation_date": "2027-02-20"})
    assert again["status"] == "succeeded"
    assert again["result"]["explanation"]["salary"]["status"] == "pending"  # type: ignore[index]
    assert again["result"]["id"] == result["id"]  # type: ignore[index]  # one settlement per leaver
    with Session(engine) as session, session.begin():
        run_id = session.scalar(text("SELECT id FROM payroll_runs WHERE year = 2027 AND month = 3"))
        runs.approve(session, run_id, approver=None, allow_failures=True)
    approved = run_command(engine, {"employee_id": str(employee), "earned_leave_days": "20",
                                    "leave_override_reason": "leave before the ledger was kept",
                                    "resignation_date": "2027-02-20"})
    assert approved["status"] == "succeeded", approved
    assert approved["result"]["explanation"]["salary"]["status"] == "processed"  # type: ignore[index]
    with Session(engine) as session:
        assert final_settlement.get(session, employee).gratuity == D("120000.00")


def test_an_employee_without_a_last_working_day_is_refused(engine: Engine) -> None:
    employee = new_employee(engine, joining=dt.date(2019, 4, 1))
    add_structure(engine, employee, dt.date(2019, 4, 1), basic="26000")
    with Session(engine) as session, pytest.raises(PayrollConflict, match="no last working day"):
        final_settlement.settle_employee(session, employee, earned_leave_days=D(0), resignation_date=None)


def test_the_api_starts_a_settlement_and_shows_it_to_whom_it_concerns(app: Any, engine: Engine) -> None:
    hr, leaving, colleague = (make_account(engine, role) for role in ("hr_department", "employee", "employee"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE employees SET joining_date = '2018-06-01', last_working_date = '2027-05-31' "
                          "WHERE id = :id"), {"id": leaving.id})
    add_structure(engine, leaving.id, dt.date(2018, 6, 1), basic="52000", esi=False)
    as_hr = client_for(app, hr)

    refused = {
        "no last working day": {"employee_id": str(colleague.id)},
        "no such employee": {"employee_id": str(uuid.uuid4())},
        "a third of a day": {"employee_id": str(leaving.id), "earned_leave_days": "1.3"},
        "notice after leaving": {"employee_id": str(leaving.id), "resignation_date": "2027-06-01"},
    }
    for what, body in refused.items():
        answer = as_hr.post("/api/v1/payroll/final-settlements", json=body)
        assert answer.status_code == 422, what
        assert answer.content_type == "application/problem+json" and answer.json["errors"], what
    assert client_for(app, colleague).post("/api/v1/payroll/final-settlements",
                                           json={"employee_id": str(leaving.id)}).status_code == 403

    started = as_hr.post("/api/v1/payroll/final-settlements",
                         json={"employee_id": str(leaving.id), "earned_leave_days": 10.5,
                               "leave_override_reason": "leave before the ledger was kept"},
                         headers={"Idempotency-Key": '"fnf-1"'})
    assert started.status_code == 202 and started.json["kind"] == FINAL_SETTLEMENT_KIND
    env = commands.Environment(settings=load_settings(), engine=engine, enqueue=lambda *_: None)
    commands.execute(uuid.UUID(started.json["id"]), commands.command_of(FINAL_SETTLEMENT_KIND).run(env),
                     engine=engine, lease_seconds=60)

    shown = as_hr.get(f"/api/v1/payroll/final-settlements/{leaving.id}")
    assert shown.status_code == 200
    # 1 June 2018 - 31 May 2027: nine years; 52,000 x 15 x 9 / 26 = 2,70,000; 10.5 x 52,000 / 26 = 21,000.
    assert (shown.json["counted_years"], shown.json["gratuity"], shown.json["leave_encashment"]) == (
        9, "270000.00", "21000.00")
    assert client_for(app, leaving).get(f"/api/v1/payroll/final-settlements/{leaving.id}").status_code == 200
    assert client_for(app, colleague).get(f"/api/v1/payroll/final-settlements/{leaving.id}").status_code == 404
    statement = client_for(app, leaving).get(f"/api/v1/payroll/final-settlements/{leaving.id}/statement")
    assert statement.status_code == 200 and statement.mimetype == "application/pdf"
    assert statement.data.startswith(b"%PDF")
    assert client_for(app, colleague).get(
        f"/api/v1/payroll/final-settlements/{leaving.id}/statement").status_code == 404
