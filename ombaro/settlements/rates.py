"""TDS rates as dated data (tds_rates): which rate applies to a deductee on a day."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ombaro.models.settlements import TdsRate
from ombaro.settlements.calculation import TDS_SECTION


def rate_on(session: Session, day: dt.date, *, pan_available: bool, section: str = TDS_SECTION) -> Decimal | None:
    """The percentage in force on `day`, or None when no row covers it."""
    return session.execute(
        select(TdsRate.rate_percent).where(
            TdsRate.section == section, TdsRate.pan_available == pan_available, TdsRate.effective_from <= day,
            or_(TdsRate.effective_to.is_(None), TdsRate.effective_to >= day))).scalar_one_or_none()


def all_rates(session: Session, section: str | None = None) -> Sequence[TdsRate]:
    query = select(TdsRate).order_by(TdsRate.section, TdsRate.pan_available.desc(), TdsRate.effective_from)
    if section:
        query = query.where(TdsRate.section == section)
    return session.scalars(query).all()
