"""Paying a full and final settlement once (issue 15): HR approves it (not whoever computed it), finance
downloads a bank file in the payroll format that turns the approved settlements paid, and a second
download pays no one twice; a recomputation sends an approved settlement back for approval and leaves a
paid one alone."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro.payroll import final_settlement
from tests.factories.accounts import client_for, make_account
from tests.factories.payroll import add_structure
from tests.payroll.helpers import run_final_settlement

BANK = {"account_number": "987654321098", "ifsc": "ICIC0004321", "bank_name": "ICICI Bank"}


def test_a_settlement_is_approved_by_another_officer_and_paid_once(app: Any, engine: Engine) -> None:
    maker, checker = make_account(engine, "hr_department"), make_account(engine, "hr_department")
    finance, leaving = make_account(engine, "accounts_department"), make_account(engine, "employee",
                                                                                 bank_details=BANK)
    with engine.begin() as conn:
        conn.execute(text("UPDATE employees SET joining_date = '2019-06-01', last_working_date = '2027-05-31' "
                          "WHERE id = :id"), {"id": leaving.id})
    add_structure(engine, leaving.id, dt.date(2019, 6, 1), basic="52000", esi=False)
    params = {"employee_id": str(leaving.id), "earned_leave_days": "13",
              "leave_override_reason": "leave before the ledger was kept"}
    assert run_final_settlement(engine, params, requested_by=maker.id)["status"] == "succeeded"
    url = f"/api/v1/payroll/final-settlements/{leaving.id}"

    refused = client_for(app, maker).post(f"{url}/approve")
    assert refused.status_code == 403 and refused.content_type == "application/problem+json"
    assert client_for(app, leaving).post(f"{url}/approve").status_code == 403  # no payroll:approve
    assert client_for(app, finance).post("/api/v1/payroll/final-settlements/bank-file").status_code == 409
    approved = client_for(app, checker).post(f"{url}/approve")
    assert approved.status_code == 200, approved.json
    assert approved.json["status"] == "approved" and approved.json["approved_by"] == str(checker.id)
    assert client_for(app, checker).post(f"{url}/approve").status_code == 409  # once

    # A recomputation (say the leave balance was wrong) goes back to computed, to be approved again.
    assert run_final_settlement(engine, params, requested_by=maker.id)["status"] == "succeeded"
    assert client_for(app, checker).get(url).json["status"] == "computed"
    assert client_for(app, checker).post(f"{url}/approve").status_code == 200

    net = client_for(app, checker).get(url).json["net_amount"]
    # 8 years: 52,000 x 15 x 8 / 26 = 2,40,000; 13 x 52,000 / 26 = 26,000; no TDS (income within the rebate).
    assert net == "266000.00"
    assert client_for(app, leaving).post("/api/v1/payroll/final-settlements/bank-file").status_code == 403
    paid = client_for(app, finance).post("/api/v1/payroll/final-settlements/bank-file")
    assert paid.status_code == 200 and paid.mimetype == "text/csv"
    reference = paid.headers["X-Bank-File-Reference"]
    assert reference.startswith("FNF")
    rows = list(csv.DictReader(io.StringIO(paid.get_data(as_text=True))))
    assert list(rows[0]) == ["account_number", "ifsc", "amount", "reference", "beneficiary_name", "employee_code"]
    mine = [r for r in rows if r["account_number"] == BANK["account_number"]]
    assert len(mine) == 1 and mine[0]["amount"] == net and mine[0]["ifsc"] == BANK["ifsc"]
    assert mine[0]["reference"] == f"{reference}/{mine[0]['employee_code']}"

    assert client_for(app, finance).post("/api/v1/payroll/final-settlements/bank-file").status_code == 409
    shown = client_for(app, leaving).get(url).json
    assert shown["status"] == "paid" and shown["payment_reference"] == mine[0]["reference"]
    again = client_for(app, finance).get(f"/api/v1/payroll/final-settlements/bank-file?reference={reference}")
    assert again.status_code == 200 and again.get_data(as_text=True) == paid.get_data(as_text=True)
    assert client_for(app, finance).get(
        "/api/v1/payroll/final-settlements/bank-file?reference=SAL202701-01").status_code == 422
    assert client_for(app, finance).get(
        "/api/v1/payroll/final-settlements/bank-file?reference=FNF19990101-01").status_code == 404

    recomputed = run_final_settlement(engine, params, requested_by=maker.id)
    assert recomputed["status"] == "failed" and "already paid" in str(recomputed["error"])
    with Session(engine) as session:
        assert final_settlement.get(session, leaving.id).status == "paid"
