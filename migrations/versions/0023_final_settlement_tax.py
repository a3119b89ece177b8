"""Full and final settlement, finished (issue 15): tax on the settlement, approval and payment.

Two rate kinds as dated data: `gratuity_exemption` (Income-tax Act s.10(10)(ii): the least of the
gratuity, the ceiling, and 15/26 of the last drawn wages per completed year, a part year over six
months counting; ceiling Rs 10 lakh from 2010-05-24, Rs 20 lakh from 2018-03-29) and
`leave_encashment_exemption` (s.10(10AA)(ii): the least of the amount, the ceiling, 10 months' average
salary, and the cash equivalent of at most 30 days' leave per completed year; ceiling Rs 3 lakh from
1998-04-01, Rs 25 lakh from 2023-04-01). `final_settlements` gains the exempt and taxable parts, the
TDS on the taxable part, and the maker-checker and payment columns; status `approved` between
`computed` and `paid`.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KIND_CHECK = "ck_statutory_rates_ck_statutory_rates_kind"
RATE_KINDS_0021 = ("pf", "esi", "professional_tax", "income_tax", "overtime", "attendance", "wage_deductions",
                   "gratuity", "separation")
RATE_KINDS = (*RATE_KINDS_0021, "gratuity_exemption", "leave_encashment_exemption")
STATUS_CHECK = "ck_final_settlements_status"
GRATUITY = {"days_per_year": "15", "days_per_month": "26", "wage_components": ["basic"]}
LEAVE = {"average_months": "10", "days_per_year": "30", "day_divisor": "30", "wage_components": ["basic"]}
ROWS: list[tuple[str, str, dict[str, Any], str]] = [
    ("gratuity_exemption", "2010-05-24", {**GRATUITY, "ceiling": "1000000"},
     "Income-tax Act s.10(10)(ii): least of the gratuity, Rs 10 lakh (notification S.O. 1414(E) of 11 July 2010, "
     "for employees leaving on or after 24 May 2010) and 15/26 of the last drawn wages per completed year"),
    ("gratuity_exemption", "2018-03-29", {**GRATUITY, "ceiling": "2000000"},
     "Income-tax Act s.10(10)(ii): ceiling Rs 20 lakh (notification S.O. 1420(E) of 29 March 2018, for "
     "employees leaving on or after 29 March 2018)"),
    ("leave_encashment_exemption", "1998-04-01", {**LEAVE, "ceiling": "300000"},
     "Income-tax Act s.10(10AA)(ii): least of the amount, Rs 3 lakh (notification of 1998), 10 months' average "
     "salary, and the cash equivalent of leave at 30 days per completed year"),
    ("leave_encashment_exemption", "2023-04-01", {**LEAVE, "ceiling": "2500000"},
     "Income-tax Act s.10(10AA)(ii): ceiling Rs 25 lakh (notification 31/2023 of 24 May 2023, for "
     "employees leaving on or after 1 April 2023)"),
]
MONEY_COLUMNS = ("gratuity_exempt", "gratuity_taxable", "encashment_exempt", "encashment_taxable", "tds")


def upgrade() -> None:
    op.execute(f"ALTER TABLE statutory_rates DROP CONSTRAINT {KIND_CHECK}, "
               f"ADD CONSTRAINT {KIND_CHECK} CHECK (kind IN {RATE_KINDS!r})")
    for kind, effective_from, data, source in ROWS:
        op.execute(sa.text(
            "INSERT INTO statutory_rates (kind, scope, effective_from, data, source) "
            "VALUES (:kind, 'IN', CAST(:f AS date), CAST(:data AS jsonb), :source) "
            "ON CONFLICT (kind, scope, effective_from) DO NOTHING"
        ).bindparams(kind=kind, f=effective_from, data=json.dumps(data), source=source))
    for name in MONEY_COLUMNS:
        op.add_column("final_settlements", sa.Column(name, sa.Numeric(12, 2), server_default=sa.text("0"),
                                                     nullable=False))
    op.add_column("final_settlements", sa.Column("computed_by", pg.UUID(as_uuid=True), nullable=True))
    op.add_column("final_settlements", sa.Column("approved_by", pg.UUID(as_uuid=True), nullable=True))
    op.add_column("final_settlements", sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("final_settlements", sa.Column("payment_date", sa.Date(), nullable=True))
    op.add_column("final_settlements", sa.Column("payment_reference", sa.Text(), nullable=True))
    op.execute(f"ALTER TABLE final_settlements DROP CONSTRAINT {STATUS_CHECK}, "
               f"ADD CONSTRAINT {STATUS_CHECK} CHECK (status IN ('computed', 'approved', 'paid'))")
    op.create_index("ix_final_settlements_payment_reference", "final_settlements", ["payment_reference"])


def downgrade() -> None:
    op.drop_index("ix_final_settlements_payment_reference", table_name="final_settlements")
    op.execute("UPDATE final_settlements SET status = 'computed' WHERE status = 'approved'")
    op.execute(f"ALTER TABLE final_settlements DROP CONSTRAINT {STATUS_CHECK}, "
               f"ADD CONSTRAINT {STATUS_CHECK} CHECK (status IN ('computed', 'paid'))")
    for name in ("payment_reference", "payment_date", "approved_at", "approved_by", "computed_by", *MONEY_COLUMNS):
        op.drop_column("final_settlements", name)
    op.execute("DELETE FROM statutory_rates WHERE kind IN ('gratuity_exemption', 'leave_encashment_exemption')")
    op.execute(f"ALTER TABLE statutory_rates DROP CONSTRAINT {KIND_CHECK}, "
               f"ADD CONSTRAINT {KIND_CHECK} CHECK (kind IN {RATE_KINDS_0021!r})")
