"""What the settlements API lists beside the statements: a settlement's payout attempts and the
manual adjustments. Read in the caller's session: row-level security decides whose rows exist."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from ombaro.models.settlements import Payout, SettlementAdjustment


def payouts_of(session: Session, settlement_id: uuid.UUID) -> Sequence[Payout]:
    """The settlement's payout attempts, first attempt first."""
    return session.scalars(select(Payout).where(Payout.settlement_id == settlement_id)
                           .order_by(Payout.attempt)).all()


def list_adjustments(session: Session, *, vendor_id: uuid.UUID | None, pending: bool | None,
                     limit: int) -> Sequence[SettlementAdjustment]:
    """Adjustments newest first; `pending` True: not yet applied to a settlement, False: applied."""
    query = select(SettlementAdjustment).order_by(SettlementAdjustment.created_at.desc()).limit(limit)
    if vendor_id:
        query = query.where(SettlementAdjustment.vendor_id == vendor_id)
    if pending is not None:
        query = query.where(SettlementAdjustment.settlement_id.is_(None) if pending
                            else SettlementAdjustment.settlement_id.is_not(None))
    return session.scalars(query).all()
