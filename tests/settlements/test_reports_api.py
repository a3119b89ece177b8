"""The statutory reports through the API, per role: GSTR-8 (s.52 TCS) for July 2024 across the
10 July rate change, and 194-O for the second quarter of 2024-25 with an inoperative PAN. The
expected figures are worked out by hand below from the statute's rates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ombaro.settlements import runs
from tests.factories import settlements as f
from tests.factories.accounts import client_for, make_account
from tests.settlements.helpers import as_worker


@pytest.fixture
def app(app_factory: Callable[..., Any], settle_url: str) -> Any:
    return app_factory(DATABASE_URL=settle_url)


def test_gstr8_and_194o_figures_per_role(app: Any, settle_engine: Engine) -> None:
    engine = settle_engine
    intra, inter = make_account(engine, "vendor"), make_account(engine, "vendor")
    with engine.begin() as conn:
        conn.execute(text("UPDATE vendors SET gst_number = '27ABCDE1234F1Z5', pan_number = 'ABCDE1234F', "
                          "commission_rate = 10 WHERE id = :v"), {"v": intra.id})
        conn.execute(text("UPDATE vendors SET gst_number = '29ABCDE1234F1Z3', pan_number = 'ABCDE1234F', "
                          "pan_status = 'inoperative', pan_status_on = '2024-07-01', commission_rate = 10 "
                          "WHERE id = :v"), {"v": inter.id})
        customer = f.user(conn)

        def pay(vendor: Any, amount: str, tax: str, at: dt.datetime) -> Any:
            booking = f.booking(conn, vendor, customer, total=Decimal(amount), day=at.date())
            return f.payment(conn, booking, amount=Decimal(amount), tax=Decimal(tax), at=at)

        pay(intra.id, "11800.00", "1800.00", f.ist(2024, 7, 9, 23, 59, 59))  # TCS 1%: 50.00 + 50.00
        second = pay(intra.id, "5900.00", "900.00", f.ist(2024, 7, 10, 0, 0, 0))  # TCS 0.5%: 12.50 + 12.50
        f.refund(conn, second, amount=Decimal("2950.00"), at=f.ist(2024, 7, 12, 9))  # half back: -6.25 - 6.25
        pay(inter.id, "1180.00", "180.00", f.ist(2024, 7, 10, 12))  # IGST 0.5%: 5.00
    period = runs.Period(dt.date(2024, 7, 8), dt.date(2024, 7, 14))
    as_worker(engine, lambda s: runs.settle_batch(s, run_id=None, period=period, vendor_ids=[intra.id, inter.id],
                                                  requested_by=None, zone="Asia/Kolkata"))

    expected_gstr8 = {
        str(intra.id): {"gstin": "27ABCDE1234F1Z5", "gross_supplies": "15000.00", "supplies_returned": "2500.00",
                        "net_taxable": "12500.00", "igst": "0.00", "cgst": "56.25", "sgst": "56.25", "lines": 3},
        str(inter.id): {"gstin": "29ABCDE1234F1Z3", "gross_supplies": "1000.00", "supplies_returned": "0.00",
                        "net_taxable": "1000.00", "igst": "5.00", "cgst": "0.00", "sgst": "0.00", "lines": 1}}
    # 194-O at 1% on the sale without its GST; the refund reverses its share; 5% without an operative PAN.
    expected_tds = {str(intra.id): ("12500.00", "125.00", {"rate"}),
                    str(inter.id): ("1000.00", "50.00", {"no_operative_pan"})}

    def pick(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {r["vendor_id"]: {k: r[k] for k in expected_gstr8[str(intra.id)]} for r in rows
                if r["vendor_id"] in expected_gstr8}

    for role in ("accounts_department", "finance_department", "directors"):
        staff = client_for(app, make_account(engine, role))
        report = staff.get("/api/v1/settlements/reports/gstr8?month=2024-07")
        assert report.status_code == 200, report.json
        assert pick(report.json["suppliers"]) == expected_gstr8
        assert report.json["totals"]["cgst"] == str(sum(Decimal(r["cgst"]) for r in report.json["suppliers"]))
        quarter = staff.get("/api/v1/settlements/reports/tds-194o?financial_year=2024-25&quarter=2").json
        assert (quarter["from"], quarter["to"]) == ("2024-07-01", "2024-09-30")
        got = {d["vendor_id"]: (d["amount_credited"], d["tds"], {m["tds_rule"] for m in d["by_month"]})
               for d in quarter["deductees"] if d["vendor_id"] in expected_tds}
        assert got == expected_tds

    # A vendor sees its own lines only (row-level security), with the same figures.
    own = client_for(app, intra).get("/api/v1/settlements/reports/gstr8?month=2024-07").json
    assert [r["vendor_id"] for r in own["suppliers"]] == [str(intra.id)]
    assert pick(own["suppliers"]) == {str(intra.id): expected_gstr8[str(intra.id)]}
    assert own["totals"]["net_taxable"] == "12500.00"
    own_tds = client_for(app, inter).get("/api/v1/settlements/reports/tds-194o?financial_year=2024-25&quarter=2").json
    assert [(d["vendor_id"], d["tds"], d["pan_status"]) for d in own_tds["deductees"]] == [
        (str(inter.id), "50.00", "inoperative")]

    # Roles without settlements:export are refused; nobody anonymous gets in.
    for role in ("ca_cs", "customer", "customer_care"):
        refused = client_for(app, make_account(engine, role))
        assert refused.get("/api/v1/settlements/reports/gstr8?month=2024-07").status_code == 403
        assert refused.get("/api/v1/settlements/reports/tds-194o?financial_year=2024-25&quarter=2").status_code == 403
    assert client_for(app).get("/api/v1/settlements/reports/gstr8?month=2024-07").status_code == 401


def test_bad_report_requests_are_422_with_field_errors(app: Any, settle_engine: Engine) -> None:
    client = client_for(app, make_account(settle_engine, "accounts_department"))
    for query, field in (("month=2024-13", "month"), ("month=July", "month"), ("", "month")):
        answer = client.get(f"/api/v1/settlements/reports/gstr8?{query}")
        assert answer.status_code == 422 and field in answer.json["errors"], (query, answer.json)
    for query, field in (("financial_year=2024-26&quarter=1", "financial_year"),
                         ("financial_year=2024&quarter=1", "financial_year"),
                         ("financial_year=2024-25&quarter=5", "quarter"),
                         ("financial_year=2024-25", "quarter")):
        answer = client.get(f"/api/v1/settlements/reports/tds-194o?{query}")
        assert answer.status_code == 422 and field in answer.json["errors"], (query, answer.json)
