"""Settlement statements (CSV): the header's totals, then one line per item, one for the GST on
the commission (the platform's numbered invoice or credit note) and one per adjustment, so the
lines' net column adds up to the settlement's net; and the finance export, one row per
settlement. Reads run as the caller: row-level security decides whose settlements exist."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ombaro.models.payments import PaymentSettlement
from ombaro.settlements.runs import SettlementNotFound

ITEM_COLUMNS = ("line", "item_date", "kind", "booking_number", "payment_id", "refund_id", "collected_by",
                "sale_amount", "gross_amount", "commission_rate", "commission_amount", "tds_section", "tds_rate",
                "tds_amount", "tcs_amount", "adjustment_amount", "net_amount", "reason")
EXPORT_COLUMNS = ("settlement_id", "vendor_id", "business_name", "period_start", "period_end", "status",
                  "total_bookings", "gross_amount", "commission_amount", "commission_gst_amount", "tds_amount",
                  "tcs_amount", "adjustment_amount", "net_settlement_amount", "payment_reference", "payment_date")


def list_settlements(session: Session, *, statuses: Sequence[str] = (), vendor_id: uuid.UUID | None = None,
                     period_from: dt.date | None = None, period_to: dt.date | None = None,
                     limit: int = 50) -> Sequence[PaymentSettlement]:
    """Newest period first. `period_from`/`period_to` keep settlements whose period lies inside."""
    query = select(PaymentSettlement).order_by(PaymentSettlement.settlement_period_end.desc(),
                                               PaymentSettlement.vendor_id).limit(limit)
    if statuses:
        query = query.where(PaymentSettlement.status.in_(list(statuses)))
    if vendor_id:
        query = query.where(PaymentSettlement.vendor_id == vendor_id)
    if period_from:
        query = query.where(PaymentSettlement.settlement_period_start >= period_from)
    if period_to:
        query = query.where(PaymentSettlement.settlement_period_end <= period_to)
    return session.scalars(query).all()


def items_of(session: Session, settlement_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = session.execute(text("""
        SELECT i.item_date, i.kind, b.booking_number, i.payment_id, i.refund_id, i.collected_by, i.sale_amount,
               i.gross_amount, i.commission_rate, i.commission_amount, i.tds_section, i.tds_rate, i.tds_amount,
               i.tcs_cgst + i.tcs_sgst + i.tcs_igst AS tcs_amount, i.net_amount
        FROM settlement_items AS i LEFT JOIN bookings AS b ON b.id = i.booking_id
        WHERE i.settlement_id = :id ORDER BY i.item_date, i.kind, i.id"""), {"id": settlement_id}).mappings()
    return [dict(row) for row in rows]


def adjustments_of(session: Session, settlement_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = session.execute(text(
        "SELECT id, kind, amount, reason, created_at FROM settlement_adjustments WHERE settlement_id = :id "
        "ORDER BY created_at, id"), {"id": settlement_id}).mappings()
    return [dict(row) for row in rows]


def tax_document_of(session: Session, settlement_id: uuid.UUID) -> dict[str, Any] | None:
    """The platform's invoice (or credit note) for the settlement's commission, if it has one."""
    row = session.execute(text(
        "SELECT document_type, number, document_date, taxable_amount, gst_rate, cgst, sgst, igst "
        "FROM settlement_tax_documents WHERE settlement_id = :id"), {"id": settlement_id}).mappings().first()
    return dict(row) if row else None


def statement_csv(session: Session, settlement_id: uuid.UUID) -> str:
    settlement = session.get(PaymentSettlement, settlement_id)
    if settlement is None:
        raise SettlementNotFound(f"no settlement {settlement_id}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for label, value in (
        ("settlement_id", settlement.id), ("vendor_id", settlement.vendor_id),
        ("period_start", settlement.settlement_period_start), ("period_end", settlement.settlement_period_end),
        ("status", settlement.status), ("total_bookings", settlement.total_bookings),
        ("gross_amount", settlement.gross_amount), ("commission_amount", settlement.commission_amount),
        ("commission_gst_amount", settlement.commission_gst_amount), ("tds_amount", settlement.tds_amount),
        ("tcs_amount", settlement.tcs_amount), ("adjustment_amount", settlement.adjustment_amount),
        ("net_settlement_amount", settlement.net_settlement_amount),
        ("payment_reference", settlement.payment_reference or ""),
    ):
        writer.writerow([label, value])
    writer.writerow([])
    writer.writerow(ITEM_COLUMNS)
    line = 0
    for item in items_of(session, settlement_id):
        line += 1
        writer.writerow([line, item["item_date"], item["kind"], item["booking_number"] or "", item["payment_id"],
                         item["refund_id"] or "", item["collected_by"], item["sale_amount"], item["gross_amount"],
                         item["commission_rate"], item["commission_amount"], item["tds_section"], item["tds_rate"],
                         item["tds_amount"], item["tcs_amount"], "", item["net_amount"], ""])
    document = tax_document_of(session, settlement_id)
    if document is not None:
        line += 1
        gst = document["cgst"] + document["sgst"] + document["igst"]
        writer.writerow([line, document["document_date"], f"commission_gst_{document['document_type']}", "", "", "",
                         "", "", "", document["gst_rate"], gst, "", "", "", "", "", -gst,
                         f"GST on the commission, {document['document_type'].replace('_', ' ')} {document['number']} "
                         f"(CGST {document['cgst']}, SGST {document['sgst']}, IGST {document['igst']})"])
    for adjustment in adjustments_of(session, settlement_id):
        line += 1
        writer.writerow([line, adjustment["created_at"].date(), adjustment["kind"], "", "", "", "", "", "", "", "",
                         "", "", "", "", adjustment["amount"], adjustment["amount"], adjustment["reason"]])
    return out.getvalue()


def export_csv(session: Session, settlements: Sequence[PaymentSettlement]) -> Iterator[str]:
    """The finance export: one row per settlement the caller may see."""
    names: dict[uuid.UUID, str] = {id_: name for id_, name in session.execute(
        text("SELECT id, business_name FROM vendors WHERE id = ANY (:ids)"),
        {"ids": list({s.vendor_id for s in settlements})})} if settlements else {}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for s in settlements:
        writer.writerow([s.id, s.vendor_id, names.get(s.vendor_id, ""), s.settlement_period_start,
                         s.settlement_period_end, s.status, s.total_bookings, s.gross_amount, s.commission_amount,
                         s.commission_gst_amount, s.tds_amount, s.tcs_amount, s.adjustment_amount,
                         s.net_settlement_amount, s.payment_reference or "",
                         s.payment_date.isoformat() if s.payment_date else ""])
    yield out.getvalue()
