"""What the API reads of accounts in the caller's own session (unlike accounts, which runs on the
service session): row-level security decides what the caller sees of their account and of therapists."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ombaro.models.identity import User, UserProfile
from ombaro.models.vendors import Therapist


def own_account(session: Session, user_id: uuid.UUID) -> dict[str, Any]:
    """The caller's profile (id, role, name, mobile, status) and sign-in email."""
    row = session.execute(
        select(UserProfile.id, UserProfile.role, UserProfile.name, UserProfile.mobile, UserProfile.status, User.email)
        .join(User, User.id == UserProfile.id).where(UserProfile.id == user_id)
    ).mappings().one()
    return dict(row)


def list_therapists(session: Session, limit: int) -> Sequence[Therapist]:
    """Therapists by name (a vendor's own; the operations desks' all)."""
    return session.scalars(select(Therapist).order_by(Therapist.name).limit(limit)).all()
