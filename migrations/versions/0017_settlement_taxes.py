"""Settlements as the law computes them (issue 15, docs/settlements.md): the 194-O rate history from
1 October 2020 (no rate before it) and its base as dated policy (GST shown separately excluded,
CBDT Circular 17/2020); the vendor's PAN status and date, taxpayer type and Aadhaar (5% without an
operative PAN, s.206AA; the Rs 5 lakh exemption of s.194-O(4)); GST TCS under s.52 CGST Act and
GST on the platform's commission as dated data (`gst_rates`); the platform's GST state; per line
TCS and the TDS base and rule; per settlement TCS and commission GST; numbered tax invoices and
credit notes, gap-free per financial year.

Existing rows: vendors get NULL status/type (PAN counts as operative when present, no exemption),
settlement items keep their figures (their TDS base is their sale, as it was computed).

Revision ID: 0017
Revises: 0015
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from migrations import rls as RLS

revision: str = "0017"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


api, own, role_in, everywhere = RLS.api, RLS.own, RLS.role_in, RLS.everywhere
FINANCE = ("finance_department", "accounts_department")

TDS_194O = [
    (True, "0.750", "2020-10-01", "2021-03-31", "194-O, operative PAN (Taxation and Other Laws Act 2020: 0.75%)"),
    (True, "1.000", "2021-04-01", "2024-09-30", "194-O, operative PAN"),
    (True, "0.100", "2024-10-01", None, "194-O, operative PAN (Finance (No. 2) Act 2024)"),
    (False, "5.000", "2020-10-01", None, "194-O without an operative PAN (s.206AA(1) proviso; Rule 114AAA)"),
]
GST_RATES = [
    ("tcs_52", "1.000", "2018-10-01", "2024-07-09", "s.52 CGST Act TCS (0.5% CGST + 0.5% SGST, or 1% IGST)"),
    ("tcs_52", "0.500", "2024-07-10", None, "s.52 CGST Act TCS from 10 July 2024 (Notification 15/2024-CT)"),
    ("commission", "18.000", "2017-07-01", None, "GST on the platform's commission (SAC 9985)"),
]
NEW_TABLES = ("gst_rates", "platform_tax_profile", "settlement_tax_documents", "tax_document_counters")
POLICIES: dict[str, list] = {
    "gst_rates": [api("select_authenticated", "SELECT", RLS.AUTHENTICATED)],
    "platform_tax_profile": [api("select_authenticated", "SELECT", RLS.AUTHENTICATED),
                             api("manage_finance", "ALL", role_in(*FINANCE))],
    "settlement_tax_documents": [*own("vendor_id", RLS.VENDOR, "SELECT"),
                                 api("select_finance", "SELECT", role_in(*FINANCE, "directors"))],
    "tax_document_counters": [api("select_finance", "SELECT", role_in(*FINANCE, "directors"))],
}
MONEY = sa.Numeric(12, 2)
LINE_CONSERVES_BEFORE = "net_amount = gross_amount - commission_amount - tds_amount"
LINE_CONSERVES = "net_amount = gross_amount - commission_amount - tds_amount - tcs_cgst - tcs_sgst - tcs_igst"


def _money(name: str) -> sa.Column:
    return sa.Column(name, MONEY, server_default=sa.text("0"), nullable=False)


def _check(table: str, name: str, condition: str) -> None:
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT ck_{table}_{name} CHECK ({condition})")


def upgrade() -> None:
    # Vendors: PAN status (and the day it took effect), taxpayer type, Aadhaar furnished.
    op.add_column("vendors", sa.Column("pan_status", sa.Text(), nullable=True))
    op.add_column("vendors", sa.Column("pan_status_on", sa.Date(), nullable=True))
    op.add_column("vendors", sa.Column("taxpayer_type", sa.Text(), nullable=True))
    op.add_column("vendors", sa.Column("aadhaar_furnished", sa.Boolean(), server_default=sa.text("false"),
                                       nullable=False))
    _check("vendors", "pan_status", "pan_status IN ('operative', 'inoperative')")
    _check("vendors", "taxpayer_type", "taxpayer_type IN ('individual', 'huf', 'firm', 'company', 'llp', 'other')")

    # 194-O: from 1 October 2020 only; the base is dated policy on each rate row.
    op.add_column("tds_rates", sa.Column("base", sa.Text(), server_default=sa.text("'excluding_gst'"),
                                         nullable=False))
    _check("tds_rates", "base", "base IN ('excluding_gst', 'including_gst')")
    op.execute("DELETE FROM tds_rates WHERE section = '194-O'")
    _check("tds_rates", "section_194o_from_2020_10_01", "section <> '194-O' OR effective_from >= DATE '2020-10-01'")
    tds = sa.table("tds_rates", sa.column("section", sa.Text()), sa.column("pan_available", sa.Boolean()),
                   sa.column("rate_percent", sa.Numeric(6, 3)), sa.column("effective_from", sa.Date()),
                   sa.column("effective_to", sa.Date()), sa.column("description", sa.Text()))
    op.execute(tds.insert().values([
        {"section": "194-O", "pan_available": p, "rate_percent": r, "effective_from": sa.text(f"DATE '{f}'"),
         "effective_to": sa.text(f"DATE '{t}'") if t else None, "description": d} for p, r, f, t, d in TDS_194O]))

    op.create_table(
        "gst_rates",
        sa.Column("id", pg.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tax", sa.Text(), nullable=False),
        sa.Column("rate_percent", sa.Numeric(6, 3), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("tax IN ('tcs_52', 'commission')", name="tax"),
        sa.CheckConstraint("rate_percent >= 0 AND rate_percent <= 100", name="rate_percent"),
        sa.CheckConstraint("effective_to IS NULL OR effective_to >= effective_from", name="dates_ordered"),
        # s.52 TCS was notified from 1 October 2018; GST itself from 1 July 2017.
        sa.CheckConstraint("effective_from >= CASE WHEN tax = 'tcs_52' THEN DATE '2018-10-01' "
                           "ELSE DATE '2017-07-01' END", name="in_force"),
        sa.PrimaryKeyConstraint("id", name="pk_gst_rates"),
    )
    op.execute("ALTER TABLE gst_rates ADD CONSTRAINT ex_gst_rates_no_overlap EXCLUDE USING gist "
               "(tax WITH =, daterange(effective_from, effective_to, '[]') WITH &&)")
    gst = sa.table("gst_rates", sa.column("tax", sa.Text()), sa.column("rate_percent", sa.Numeric(6, 3)),
                   sa.column("effective_from", sa.Date()), sa.column("effective_to", sa.Date()),
                   sa.column("description", sa.Text()))
    op.execute(gst.insert().values([
        {"tax": x, "rate_percent": r, "effective_from": sa.text(f"DATE '{f}'"),
         "effective_to": sa.text(f"DATE '{t}'") if t else None, "description": d} for x, r, f, t, d in GST_RATES]))

    # The platform's own GST registration (one row): its state decides CGST+SGST or IGST.
    op.create_table(
        "platform_tax_profile",
        sa.Column("id", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("state_code", sa.Text(), nullable=False),
        sa.Column("gstin", sa.Text(), nullable=True),
        sa.Column("tan", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("id", name="one_row"),
        sa.CheckConstraint("state_code ~ '^[0-9]{2}$'", name="state_code"),
        sa.CheckConstraint("gstin IS NULL OR left(gstin, 2) = state_code", name="gstin_state"),
        sa.PrimaryKeyConstraint("id", name="pk_platform_tax_profile"),
    )
    op.execute("INSERT INTO platform_tax_profile (state_code) VALUES ('27')")  # Maharashtra until finance sets it

    for column in ("tax_shown", "tcs_base", "tcs_cgst", "tcs_sgst", "tcs_igst"):
        op.add_column("settlement_items", _money(column))
    op.add_column("settlement_items", sa.Column("tcs_rate", sa.Numeric(6, 3), server_default=sa.text("0"),
                                                nullable=False))
    op.add_column("settlement_items", sa.Column("tds_base", MONEY, nullable=True))
    op.add_column("settlement_items", sa.Column("tds_rule", sa.Text(), server_default=sa.text("'rate'"),
                                                nullable=False))
    # Lines settled before: their TDS base was their sale (GST included), the rule the rate's.
    op.execute("UPDATE settlement_items SET tds_base = sale_amount, "
               "tds_rule = CASE WHEN tds_rate = 5 THEN 'no_operative_pan' ELSE 'rate' END")
    op.alter_column("settlement_items", "tds_base", nullable=False)
    _check("settlement_items", "tds_rule",
           "tds_rule IN ('rate', 'no_operative_pan', 'exempt_194o4', 'return_other_year')")
    # 0005 named it twice over (its create_table met the naming convention).
    op.execute("ALTER TABLE settlement_items DROP CONSTRAINT ck_settlement_items_ck_settlement_items_line_conserves")
    _check("settlement_items", "line_conserves", LINE_CONSERVES)

    op.add_column("payment_settlements", _money("tcs_amount"))
    op.add_column("payment_settlements", _money("commission_gst_amount"))

    op.create_table(
        "tax_document_counters",
        sa.Column("id", pg.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("document_type", sa.Text(), nullable=False),
        sa.Column("financial_year", sa.Text(), nullable=False),
        sa.Column("last_serial", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tax_document_counters"),
        sa.UniqueConstraint("document_type", "financial_year",
                            name="uq_tax_document_counters_document_type_financial_year"),
    )
    op.create_table(
        "settlement_tax_documents",
        sa.Column("id", pg.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("settlement_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("vendor_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("document_type", sa.Text(), nullable=False),
        sa.Column("financial_year", sa.Text(), nullable=False),
        sa.Column("serial", sa.Integer(), nullable=False),
        sa.Column("number", sa.Text(), nullable=False),
        sa.Column("document_date", sa.Date(), nullable=False),
        sa.Column("supplier_state", sa.Text(), nullable=False),
        sa.Column("recipient_state", sa.Text(), nullable=False),
        sa.Column("recipient_gstin", sa.Text(), nullable=True),
        sa.Column("taxable_amount", MONEY, nullable=False),
        sa.Column("gst_rate", sa.Numeric(6, 3), nullable=False),
        _money("cgst"), _money("sgst"), _money("igst"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("document_type IN ('invoice', 'credit_note')", name="type"),
        sa.CheckConstraint("serial >= 1", name="serial"),
        sa.CheckConstraint("length(number) <= 16", name="number_length"),  # Rule 46(b)
        sa.CheckConstraint("(document_type = 'invoice') = (taxable_amount > 0)",
                           name="sign"),
        sa.PrimaryKeyConstraint("id", name="pk_settlement_tax_documents"),
        sa.ForeignKeyConstraint(["settlement_id"], ["payment_settlements.id"], ondelete="RESTRICT",
                                name="fk_settlement_tax_documents_settlement_id_payment_settlements"),
        sa.ForeignKeyConstraint(["vendor_id"], ["vendors.id"], ondelete="RESTRICT",
                                name="fk_settlement_tax_documents_vendor_id_vendors"),
        sa.UniqueConstraint("settlement_id", name="uq_settlement_tax_documents_settlement_id"),
        sa.UniqueConstraint("number", name="uq_settlement_tax_documents_number"),
        sa.UniqueConstraint("document_type", "financial_year", "serial", name="uq_settlement_tax_documents_serial"),
    )
    op.create_index("idx_settlement_tax_documents_vendor", "settlement_tax_documents", ["vendor_id"])
    # The reports read lines by date.
    op.create_index("idx_settlement_items_date", "settlement_items", ["item_date"])

    for table in NEW_TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {RLS.REQUEST_ROLES}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
    for table, policies in POLICIES.items():
        for policy in (*everywhere(), *policies):
            op.execute(RLS.policy_sql(table, policy))


def downgrade() -> None:
    op.drop_index("idx_settlement_items_date", "settlement_items")
    for table in reversed(NEW_TABLES):
        op.drop_table(table)
    op.drop_column("payment_settlements", "commission_gst_amount")
    op.drop_column("payment_settlements", "tcs_amount")
    op.execute("ALTER TABLE settlement_items DROP CONSTRAINT ck_settlement_items_line_conserves")
    op.execute("ALTER TABLE settlement_items DROP CONSTRAINT ck_settlement_items_tds_rule")
    for column in ("tds_rule", "tds_base", "tcs_rate", "tcs_igst", "tcs_sgst", "tcs_cgst", "tcs_base", "tax_shown"):
        op.drop_column("settlement_items", column)
    op.execute("ALTER TABLE settlement_items ADD CONSTRAINT ck_settlement_items_ck_settlement_items_line_conserves "
               f"CHECK ({LINE_CONSERVES_BEFORE})")
    op.execute("ALTER TABLE tds_rates DROP CONSTRAINT ck_tds_rates_section_194o_from_2020_10_01")
    op.execute("ALTER TABLE tds_rates DROP CONSTRAINT ck_tds_rates_base")
    op.drop_column("tds_rates", "base")
    op.execute("DELETE FROM tds_rates WHERE section = '194-O' AND effective_from = DATE '2020-10-01' "
               "AND rate_percent = 0.75")
    op.execute("UPDATE tds_rates SET effective_from = DATE '2016-10-01' WHERE section = '194-O' "
               "AND effective_from IN (DATE '2020-10-01', DATE '2021-04-01')")
    op.execute("ALTER TABLE vendors DROP CONSTRAINT ck_vendors_taxpayer_type")
    op.execute("ALTER TABLE vendors DROP CONSTRAINT ck_vendors_pan_status")
    for column in ("aadhaar_furnished", "taxpayer_type", "pan_status_on", "pan_status"):
        op.drop_column("vendors", column)
