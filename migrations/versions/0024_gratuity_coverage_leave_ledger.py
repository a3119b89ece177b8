"""Full and final settlement, the rest of issue 15: gratuity of an employee not covered by the Payment of
Gratuity Act, and the earned-leave ledger.

- `employees.gratuity_act_covered` (NULL: the company's `separation` policy decides, key
  `gratuity_act_covered`, true by default: an establishment of ten or more employees, Act s.1(3)). A
  gratuity not under the Act is exempt under Income-tax Act s.10(10)(iii): the least of the gratuity,
  the ceiling, and half a month's average salary (of the 10 months before the month of leaving) per
  completed year; the `gratuity_exemption` rows gain `uncovered_months_per_year` (0.5),
  `uncovered_average_months` (10), `uncovered_wage_components`, and their sources name both
  notifications (the Act's ceiling for (ii), the CBDT's for (iii); 0023 dated the 2010 one 11 July: it is
  of 11 June 2010).
- Rate kind `earned_leave` (company policy, dated): `accrual_per_month` days for each calendar month
  employed throughout, approved leave of the earned kind taken, and `carry_forward_max` days carried
  into the next leave year (a calendar year); the rest lapses.
- `final_settlements` records where the leave balance came from: `ledger_leave_days` (the ledger's
  balance on the last working day), `leave_override_reason` (HR's, when HR entered the balance).

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KIND_CHECK = "ck_statutory_rates_ck_statutory_rates_kind"
RATE_KINDS_0023 = (
    "pf",
    "esi",
    "professional_tax",
    "income_tax",
    "overtime",
    "attendance",
    "wage_deductions",
    "gratuity",
    "separation",
    "gratuity_exemption",
    "leave_encashment_exemption",
)
RATE_KINDS = (*RATE_KINDS_0023, "earned_leave")
UNCOVERED = {
    "uncovered_months_per_year": "0.5",
    "uncovered_average_months": "10",
    "uncovered_wage_components": ["basic"],
}
SOURCES = {
    "2010-05-24": (
        "Income-tax Act s.10(10)(ii) (covered by the Payment of Gratuity Act): least of the gratuity, the Act's "
        "s.4(3) ceiling Rs 10 lakh (Payment of Gratuity (Amendment) Act 2010, from 24 May 2010) and 15/26 of the "
        "last drawn wages per completed year; s.10(10)(iii) (not covered): least of the gratuity, Rs 10 lakh "
        "(notification 43/2010, S.O. 1414(E) of 11 June 2010, for employees leaving on or after 24 May 2010) "
        "and half a month's average salary of the 10 months before the month of leaving per completed year"
    ),
    "2018-03-29": (
        "Income-tax Act s.10(10)(ii): the Act's s.4(3) ceiling Rs 20 lakh (notification S.O. 1420(E) of 29 March "
        "2018 under s.4(3) as amended by the Payment of Gratuity (Amendment) Act 2018, in force that day); "
        "s.10(10)(iii): Rs 20 lakh (notification 16/2019, S.O. 1213(E) of 8 March 2019, for employees leaving "
        "on or after 29 March 2018)"
    ),
}
GRATUITY_SOURCES_0021 = {
    "2010-05-24": (
        "Payment of Gratuity Act 1972 s.4(2) (15 days' wages per completed year or part in excess of six months, "
        "a month of 26 days), s.4(1) (five years' continuous service), s.2A(2)(a)(ii) (240 days actually worked in "
        "the twelve months before make a year of continuous service; 190 in an establishment working fewer than "
        "six days a week or below ground), s.4(3) ceiling Rs 10 lakh (Payment of Gratuity (Amendment) Act 2010, "
        "in force from 24 May 2010)"
    ),
    "2018-03-29": (
        "Payment of Gratuity Act s.4(3) ceiling Rs 20 lakh: notification S.O. 1420(E) of 29 March 2018 under the "
        "Payment of Gratuity (Amendment) Act 2018, in force that day"
    ),
}
EARNED_LEAVE = (
    "2000-01-01",
    {"accrual_per_month": "1.5", "carry_forward_max": "45"},
    "Company policy: 1.5 days of earned leave for each calendar month employed throughout (18 a year), "
    "approved earned leave deducted, at most 45 days carried into the next calendar year (the rest "
    "lapses)",
)


def upgrade() -> None:
    op.execute(
        f"ALTER TABLE statutory_rates DROP CONSTRAINT {KIND_CHECK}, "
        f"ADD CONSTRAINT {KIND_CHECK} CHECK (kind IN {RATE_KINDS!r})"
    )
    for effective_from, source in SOURCES.items():
        op.execute(
            sa.text(
                "UPDATE statutory_rates SET data = data || CAST(:extra AS jsonb), source = :source "
                "WHERE kind = 'gratuity_exemption' AND scope = 'IN' AND effective_from = CAST(:f AS date)"
            ).bindparams(extra=json.dumps(UNCOVERED), source=source, f=effective_from)
        )
    for effective_from, source in GRATUITY_SOURCES_0021.items():
        op.execute(
            sa.text(
                "UPDATE statutory_rates SET source = :source "
                "WHERE kind = 'gratuity' AND scope = 'IN' AND effective_from = CAST(:f AS date)"
            ).bindparams(source=source, f=effective_from)
        )
    op.execute(
        "UPDATE statutory_rates SET data = data || '{\"gratuity_act_covered\": true}'::jsonb "
        "WHERE kind = 'separation' AND NOT data ? 'gratuity_act_covered'"
    )
    effective_from, data, source = EARNED_LEAVE
    op.execute(
        sa.text(
            "INSERT INTO statutory_rates (kind, scope, effective_from, data, source) "
            "VALUES ('earned_leave', 'IN', CAST(:f AS date), CAST(:data AS jsonb), :source) "
            "ON CONFLICT (kind, scope, effective_from) DO NOTHING"
        ).bindparams(f=effective_from, data=json.dumps(data), source=source)
    )
    op.add_column("employees", sa.Column("gratuity_act_covered", sa.Boolean(), nullable=True))
    op.add_column("final_settlements", sa.Column("ledger_leave_days", sa.Numeric(7, 2), nullable=True))
    op.add_column("final_settlements", sa.Column("leave_override_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("final_settlements", "leave_override_reason")
    op.drop_column("final_settlements", "ledger_leave_days")
    op.drop_column("employees", "gratuity_act_covered")
    op.execute("DELETE FROM statutory_rates WHERE kind = 'earned_leave'")
    op.execute("UPDATE statutory_rates SET data = data - 'gratuity_act_covered' WHERE kind = 'separation'")
    op.execute(
        "UPDATE statutory_rates SET data = data - 'uncovered_months_per_year' - 'uncovered_average_months' "
        "- 'uncovered_wage_components' WHERE kind = 'gratuity_exemption'"
    )
    op.execute(
        f"ALTER TABLE statutory_rates DROP CONSTRAINT {KIND_CHECK}, "
        f"ADD CONSTRAINT {KIND_CHECK} CHECK (kind IN {RATE_KINDS_0023!r})"
    )
