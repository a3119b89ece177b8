"""Worked examples, each figure computed by hand in the comments beside it and checked against the
record a real run writes (attendance and leave in the database, the command path, the worker role).

Rates used (seeded by migrations 0006 and 0018): PF 12% of the PF wage up to Rs 15,000, rounded to the
rupee, the wage being (from December 2025, Code on Social Security s.2(88)) all pay less HRA,
conveyance, medical, overtime and bonus unless those exceed half of it;
ESI 0.75% when the rate of wages is at most Rs 21,000, rounded up to the rupee; Maharashtra PT
Rs 200 (Rs 300 in February) above Rs 10,000; Karnataka Rs 200 from Rs 25,000; West Bengal nil up to
Rs 10,000; overtime twice the ordinary rate of wages (basic plus allowances) / 26 / 8 an hour beyond 8 hours
(Factories Act s.59); new-regime income tax. Each month is
used by one example only, and each run is limited to the example's employees.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ombaro import leave
from tests.factories.payroll import add_structure, mark, new_employee
from tests.payroll.helpers import Driver, record_of


def money(record: dict, key: str) -> D:
    return D(str(record[key]))


def line(record: dict, group: str, key: str) -> D:
    return D(record[group][key])


def assert_adds_up(record: dict) -> None:
    gross = record["basic_salary"] + sum(D(v) for v in record["allowances"].values()) \
        + record["overtime_amount"] + record["bonus"]
    assert gross == record["gross_salary"]
    assert sum(D(v) for v in record["deductions"].values()) == record["total_deductions"]
    assert record["gross_salary"] - record["total_deductions"] == record["net_salary"]


def test_mid_month_joiner_is_paid_from_the_joining_day(engine: Engine, driver: Driver) -> None:
    joiner = new_employee(engine, joining=dt.date(2027, 6, 16))
    add_structure(engine, joiner, dt.date(2027, 6, 16), basic="20000", hra="8000", special="2000", pt_state="MH")
    for day in (16, 17, 18):
        mark(engine, joiner, dt.date(2027, 6, day), "present", "8")
    driver.run(2027, 6, employee_ids=[joiner])
    record = record_of(engine, joiner, 2027, 6)
    assert record is not None and record["status"] == "pending"
    # June has 30 days; employed 16th-30th = 15 days, so 15/30 of each component.
    assert record["paid_days"] == D("15.00") and record["lop_days"] == D("15.00")
    assert record["basic_salary"] == D("10000.00")  # 20,000 x 15/30
    assert line(record, "allowances", "hra") == D("4000.00")  # 8,000 x 15/30
    assert line(record, "allowances", "special") == D("1000.00")  # 2,000 x 15/30
    assert record["gross_salary"] == D("15000.00")
    # PF wage: 15,000 less HRA 4,000 (within half of it) = basic + special 11,000; 12% = 1,320.
    assert line(record, "deductions", "pf") == D("1320.00")
    assert line(record, "deductions", "esi") == D("0.00")  # rate of wages 30,000 > 21,000: not covered
    assert line(record, "deductions", "professional_tax") == D("200.00")  # MH, a man, gross > 10,000
    # TDS: 15,000 + 30,000 x 9 months (July-March) = 2,85,000 - 75,000 = 2,10,000: below 4 lakh, nil.
    assert line(record, "deductions", "tds") == D("0.00")
    assert record["total_deductions"] == D("1520.00")
    assert record["net_salary"] == D("13480.00")
    assert_adds_up(record)


def test_leaver_is_paid_to_the_last_working_day_less_absence(engine: Engine, driver: Driver) -> None:
    leaver = new_employee(engine, joining=dt.date(2027, 4, 1), last_day=dt.date(2027, 7, 10))
    add_structure(engine, leaver, dt.date(2027, 4, 1), basic="12000", hra="4800", transport="1600", pt_state="WB")
    mark(engine, leaver, dt.date(2027, 7, 5), "absent")
    mark(engine, leaver, dt.date(2027, 7, 20), "absent")  # after the last day: already unpaid, not twice
    driver.run(2027, 7, employee_ids=[leaver])
    record = record_of(engine, leaver, 2027, 7)
    assert record is not None
    # July has 31 days; employed 1st-10th = 10 days, one absent: 9 paid, 22 unpaid.
    assert record["paid_days"] == D("9.00") and record["lop_days"] == D("22.00")
    assert record["basic_salary"] == D("3483.87")  # 12,000 x 9/31 = 3,483.8709...
    assert line(record, "allowances", "hra") == D("1393.55")  # 4,800 x 9/31 = 1,393.5483...
    assert line(record, "allowances", "transport") == D("464.52")  # 1,600 x 9/31 = 464.5161...
    assert record["gross_salary"] == D("5341.94")
    assert line(record, "deductions", "pf") == D("418.00")  # 12% of 3,483.87 = 418.06, to the rupee
    assert line(record, "deductions", "esi") == D("41.00")  # 0.75% of 5,341.94 = 40.06, next rupee up
    assert line(record, "deductions", "professional_tax") == D("0.00")  # WB: nil up to 10,000
    assert line(record, "deductions", "tds") == D("0.00")  # no month left: 5,341.94 a year
    assert record["net_salary"] == D("4882.94")  # 5,341.94 - 459
    assert_adds_up(record)


def test_unpaid_leave_across_the_month_end_is_split_between_the_months(engine: Engine, driver: Driver) -> None:
    employee = new_employee(engine, joining=dt.date(2026, 1, 1))
    approver = new_employee(engine, joining=dt.date(2025, 1, 1), department="hr")
    add_structure(engine, employee, dt.date(2026, 1, 1), basic="28000", special="3000")
    with Session(engine) as session, session.begin():
        # Thursday 28 January to Tuesday 2 February 2027; Sunday the 31st is the weekly off.
        request = leave.apply(session, employee, leave_type="unpaid", from_date=dt.date(2027, 1, 28),
                              to_date=dt.date(2027, 2, 2), reason="Family matter")
        outcome = leave.approve(session, request.id, approver)
    assert outcome["days_marked"] == 5  # 28, 29, 30 January and 1, 2 February
    driver.run(2027, 1, employee_ids=[employee])
    driver.run(2027, 2, employee_ids=[employee])
    january, february = record_of(engine, employee, 2027, 1), record_of(engine, employee, 2027, 2)
    assert january is not None and february is not None
    # January: 31 days, 3 of unpaid leave: 28 paid.
    assert january["paid_days"] == D("28.00")
    assert january["basic_salary"] == D("25290.32")  # 28,000 x 28/31 = 25,290.3225...
    assert line(january, "allowances", "special") == D("2709.68")  # 3,000 x 28/31 = 2,709.6774...
    assert january["gross_salary"] == D("28000.00")
    assert line(january, "deductions", "pf") == D("1800.00")  # basic above the 15,000 ceiling
    assert january["net_salary"] == D("26200.00")
    # February 2027: 28 days, 2 of unpaid leave: 26 paid.
    assert february["paid_days"] == D("26.00")
    assert february["basic_salary"] == D("26000.00")  # 28,000 x 26/28
    assert line(february, "allowances", "special") == D("2785.71")  # 3,000 x 26/28 = 2,785.714...
    assert february["gross_salary"] == D("28785.71")
    assert february["net_salary"] == D("26985.71")  # less PF 1,800
    assert_adds_up(january)
    assert_adds_up(february)


def test_raise_on_the_fifteenth_is_prorated_by_days(engine: Engine, driver: Driver) -> None:
    employee = new_employee(engine, joining=dt.date(2027, 1, 1))
    add_structure(engine, employee, dt.date(2027, 4, 1), basic="20000", hra="10000", esi=False, pt_state="KA")
    add_structure(engine, employee, dt.date(2027, 9, 15), basic="24000", hra="12000", esi=False, pt_state="KA")
    driver.run(2027, 9, employee_ids=[employee])
    record = record_of(engine, employee, 2027, 9)
    assert record is not None
    # September: 30 days, 1st-14th at the old structure (14 days), 15th-30th at the new (16 days).
    assert record["basic_salary"] == D("22133.33")  # 20,000 x 14/30 + 24,000 x 16/30 = 9,333.33 + 12,800
    assert line(record, "allowances", "hra") == D("11066.67")  # 10,000 x 14/30 + 12,000 x 16/30
    assert record["gross_salary"] == D("33200.00")
    assert line(record, "deductions", "pf") == D("1800.00")
    assert line(record, "deductions", "professional_tax") == D("200.00")  # KA: 25,000 and more
    assert record["net_salary"] == D("31200.00")
    segments = record["explanation"]["segments"]
    assert [(s["from"], s["to"], s["days"]) for s in segments] == [("2027-09-01", "2027-09-14", 14),
                                                                  ("2027-09-15", "2027-09-30", 16)]
    assert_adds_up(record)


def test_esi_continues_to_the_period_end_after_crossing_the_threshold(engine: Engine, driver: Driver) -> None:
    employee = new_employee(engine, joining=dt.date(2027, 4, 1))
    add_structure(engine, employee, dt.date(2027, 4, 1), basic="12000", hra="6000", special="2000")
    add_structure(engine, employee, dt.date(2027, 11, 1), basic="13200", hra="6600", special="2200")
    for year, month in ((2027, 10), (2027, 11), (2028, 4)):
        driver.run(year, month, employee_ids=[employee])
    october, november, april = (record_of(engine, employee, y, m) for y, m in ((2027, 10), (2027, 11), (2028, 4)))
    assert october and november and april
    # October: 20,000 is within 21,000, covered: 0.75% = 150; PF 12% of basic + special 14,000 = 1,680
    # (HRA 6,000 is within half of 20,000, so it stays out of the PF wage).
    assert line(october, "deductions", "esi") == D("150.00")
    assert line(october, "deductions", "pf") == D("1680.00")
    assert october["net_salary"] == D("18170.00")
    # November: the raise to 22,000 crosses the threshold inside the October-March contribution
    # period, so coverage continues: 0.75% of 22,000 = 165; PF wage 15,400 is capped: 1,800.
    assert line(november, "deductions", "esi") == D("165.00")
    assert november["explanation"]["esi"]["continued_in_period"] is True
    assert november["net_salary"] == D("20035.00")
    # April: a new period starts above the threshold: no ESI.
    assert line(april, "deductions", "esi") == D("0.00")
    assert april["employer_contributions"].get("esi") is None
    assert april["net_salary"] == D("20200.00")  # 22,000 - 1,800
    for record in (october, november, april):
        assert_adds_up(record)


def test_pf_below_at_and_above_the_wage_ceiling(engine: Engine, driver: Driver) -> None:
    below, at, above = (new_employee(engine, joining=dt.date(2027, 1, 1)) for _ in range(3))
    for employee, basic in ((below, "14000"), (at, "15000"), (above, "25000")):
        add_structure(engine, employee, dt.date(2027, 4, 1), basic=basic, esi=False)
    driver.run(2027, 5, employee_ids=[below, at, above])
    records = {name: record_of(engine, e, 2027, 5) for name, e in (("below", below), ("at", at), ("above", above))}
    assert line(records["below"], "deductions", "pf") == D("1680.00")  # 12% of 14,000
    assert line(records["at"], "deductions", "pf") == D("1800.00")  # 12% of 15,000
    assert line(records["above"], "deductions", "pf") == D("1800.00")  # 12% of the 15,000 ceiling, not 25,000
    # Employer: EPS 8.33% of the capped wage to the rupee, the rest of 12% to EPF.
    assert records["at"]["employer_contributions"] == {"pf_eps": "1250.00", "pf_epf": "550.00"}  # 1,249.50
    assert records["above"]["employer_contributions"] == {"pf_eps": "1250.00", "pf_epf": "550.00"}
    assert records["below"]["employer_contributions"] == {"pf_eps": "1166.00", "pf_epf": "514.00"}  # 1,166.20
    assert records["above"]["net_salary"] == D("23200.00")
    for record in records.values():
        assert_adds_up(record)


def test_february_of_a_leap_year_has_29_days(engine: Engine, driver: Driver) -> None:
    employee = new_employee(engine, joining=dt.date(2027, 4, 1))
    add_structure(engine, employee, dt.date(2027, 4, 1), basic="29000", hra="14500", esi=False, pt_state="MH")
    mark(engine, employee, dt.date(2028, 2, 1), "absent")
    mark(engine, employee, dt.date(2028, 2, 2), "half_day", "4")
    mark(engine, employee, dt.date(2028, 2, 3), "present", "10")  # 2 hours beyond the standard 8
    driver.run(2028, 2, employee_ids=[employee])
    record = record_of(engine, employee, 2028, 2)
    assert record is not None
    # 29 days, 1 absent + 1 half day: 27.5 paid.
    assert record["paid_days"] == D("27.50") and record["lop_days"] == D("1.50")
    assert record["basic_salary"] == D("27500.00")  # 29,000 x 27.5/29
    assert line(record, "allowances", "hra") == D("13750.00")  # 14,500 x 27.5/29
    assert record["overtime_hours"] == D("2.00")
    # 2 h x 2 x (29,000 + 14,500) / 26 / 8 = 836.538...: the ordinary rate of wages is basic plus allowances.
    assert record["overtime_amount"] == D("836.54")
    assert record["gross_salary"] == D("42086.54")
    assert line(record, "deductions", "professional_tax") == D("300.00")  # Maharashtra's February
    assert line(record, "deductions", "pf") == D("1800.00")
    assert record["net_salary"] == D("39986.54")
    assert_adds_up(record)


def test_income_tax_is_the_projected_years_tax_spread_over_the_months_left(engine: Engine, driver: Driver) -> None:
    employee = new_employee(engine, joining=dt.date(2025, 1, 1))
    add_structure(engine, employee, dt.date(2025, 4, 1), basic="100000", hra="50000")
    driver.run(2026, 4, employee_ids=[employee])
    driver.run(2026, 5, employee_ids=[employee])
    april, may = record_of(engine, employee, 2026, 4), record_of(engine, employee, 2026, 5)
    assert april and may
    # FY 2026-27, projected 1,50,000 x 12 = 18,00,000; less 75,000 standard deduction = 17,25,000.
    # Slabs: 5% of 4-8 lakh 20,000 + 10% of 8-12 lakh 40,000 + 15% of 12-16 lakh 60,000
    # + 20% of 1,25,000 = 25,000 -> 1,45,000; no rebate above 12 lakh; cess 4% = 5,800 -> 1,50,800.
    assert april["explanation"]["tds"]["annual_tax"] == "150800.00"
    assert line(april, "deductions", "tds") == D("12567.00")  # 1,50,800 / 12 = 12,566.67, to the rupee
    # May: 1,50,800 - 12,567 already deducted = 1,38,233 over 11 months = 12,566.64 -> 12,567.
    assert line(may, "deductions", "tds") == D("12567.00")
    assert may["explanation"]["tds"]["tds_before"] == "12567.00"
    assert april["net_salary"] == D("135633.00")  # 1,50,000 - 1,800 PF - 12,567 TDS
    assert_adds_up(april)
