"""Statutory figures from settled lines (docs/settlements.md, "Reports"): the month's GSTR-8 (TCS
under s.52 CGST Act, per supplier GSTIN) and the quarter's 194-O data per vendor (what a 26Q
return and Form 16A need). Both read `settlement_items` in the caller's transaction, so row-level
security decides whose lines a caller sees (a vendor: its own; finance: all). A line counts in the
month or quarter of its date (the sale's, or the refund's), as it picked its rates.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from ombaro.money import ZERO

FINANCIAL_YEAR = re.compile(r"^(2\d{3})-(\d{2})$")

GSTR8 = """
SELECT i.vendor_id, v.business_name, nullif(btrim(v.gst_number), '') AS gstin,
       coalesce(sum(i.tcs_base) FILTER (WHERE i.kind = 'payment'), 0) AS gross_supplies,
       coalesce(-sum(i.tcs_base) FILTER (WHERE i.kind = 'refund'), 0) AS supplies_returned,
       sum(i.tcs_base) AS net_taxable, sum(i.tcs_igst) AS igst, sum(i.tcs_cgst) AS cgst, sum(i.tcs_sgst) AS sgst,
       count(*) AS lines
FROM settlement_items AS i
LEFT JOIN vendors AS v ON v.id = i.vendor_id
WHERE i.item_date >= :start AND i.item_date < :end AND i.tcs_base <> 0
GROUP BY i.vendor_id, v.business_name, v.gst_number
ORDER BY gstin NULLS LAST, i.vendor_id
"""

TDS_194O = """
SELECT i.vendor_id, v.business_name, nullif(btrim(v.pan_number), '') AS pan, v.pan_status, v.pan_status_on,
       v.taxpayer_type, CAST(date_trunc('month', i.item_date) AS date) AS month, i.tds_rule, i.tds_rate,
       sum(i.tds_base) AS amount_credited, sum(i.tds_amount) AS tds, count(*) AS lines
FROM settlement_items AS i
LEFT JOIN vendors AS v ON v.id = i.vendor_id
WHERE i.item_date >= :start AND i.item_date < :end AND i.tds_section = '194-O'
GROUP BY i.vendor_id, v.business_name, v.pan_number, v.pan_status, v.pan_status_on, v.taxpayer_type,
         date_trunc('month', i.item_date), i.tds_rule, i.tds_rate
ORDER BY i.vendor_id, month, i.tds_rule, i.tds_rate
"""


def month_range(month: str) -> tuple[dt.date, dt.date]:
    """'2024-07' -> [2024-07-01, 2024-08-01); ValueError for anything else."""
    if not re.fullmatch(r"2\d{3}-(0[1-9]|1[0-2])", month):
        raise ValueError("a month is YYYY-MM, from 2000-01")
    start = dt.date(int(month[:4]), int(month[5:]), 1)
    return start, (start + dt.timedelta(days=32)).replace(day=1)


def quarter_range(financial_year: str, quarter: int) -> tuple[dt.date, dt.date]:
    """'2024-25', 3 -> [2024-10-01, 2025-01-01): quarters of the April-March year."""
    found = FINANCIAL_YEAR.fullmatch(financial_year)
    if not found or (int(found[1]) + 1) % 100 != int(found[2]):
        raise ValueError("a financial year is YYYY-YY, the second year following the first (2024-25)")
    if quarter not in (1, 2, 3, 4):
        raise ValueError("a quarter is 1 to 4")
    first = int(found[1])
    start = dt.date(first + (quarter == 4), (4, 7, 10, 1)[quarter - 1], 1)
    end = dt.date(start.year + (start.month == 10), (start.month + 2) % 12 + 1, 1)
    return start, end


def gstr8(session: Session, month: str) -> dict[str, Any]:
    """The month's TCS under s.52 per supplier: gross taxable supplies made through the platform,
    supplies returned, the net on which TCS was collected, and IGST / CGST / SGST collected."""
    start, end = month_range(month)
    rows = session.execute(text(GSTR8), {"start": start, "end": end}).mappings().all()
    suppliers = [dict(r) for r in rows]
    keys = ("gross_supplies", "supplies_returned", "net_taxable", "igst", "cgst", "sgst")
    return {"month": month, "suppliers": suppliers,
            "totals": {k: sum((r[k] for r in suppliers), ZERO) for k in keys}}


def tds_194o(session: Session, financial_year: str, quarter: int) -> dict[str, Any]:
    """The quarter's 194-O figures per vendor (deductee): PAN and its status, amounts credited and
    TDS by month, rule and rate, and the vendor's totals (26Q's deductee rows, Form 16A's figures)."""
    start, end = quarter_range(financial_year, quarter)
    rows = session.execute(text(TDS_194O), {"start": start, "end": end}).mappings().all()
    vendors: dict[Any, dict[str, Any]] = {}
    for r in rows:
        vendor = vendors.setdefault(r["vendor_id"], {
            "vendor_id": r["vendor_id"], "business_name": r["business_name"], "pan": r["pan"],
            "pan_status": r["pan_status"], "pan_status_on": r["pan_status_on"], "taxpayer_type": r["taxpayer_type"],
            "amount_credited": ZERO, "tds": ZERO, "lines": 0, "by_month": []})
        vendor["by_month"].append({"month": r["month"].strftime("%Y-%m"), "tds_rule": r["tds_rule"],
                                   "tds_rate": r["tds_rate"], "amount_credited": r["amount_credited"],
                                   "tds": r["tds"], "lines": r["lines"]})
        vendor["amount_credited"] += r["amount_credited"]
        vendor["tds"] += r["tds"]
        vendor["lines"] += r["lines"]
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for vendor in vendors.values():
        totals["amount_credited"] += vendor["amount_credited"]
        totals["tds"] += vendor["tds"]
    return {"section": "194-O", "financial_year": financial_year, "quarter": quarter,
            "from": start, "to": end - dt.timedelta(days=1), "deductees": list(vendors.values()),
            "totals": {"amount_credited": totals["amount_credited"], "tds": totals["tds"]}}
