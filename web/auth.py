"""Who is calling. The one place the current user is resolved: the identity issue replaces the
body of `current_user` (tokens, roles) and every endpoint picks it up from here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class CurrentUser:
    id: uuid.UUID | None
    role: str | None

    @property
    def idempotency_scope(self) -> str:
        # Idempotency keys are unique per caller (IETF draft): one client's key never matches another's.
        return str(self.id) if self.id else "anonymous"


ANONYMOUS = CurrentUser(id=None, role=None)


def current_user() -> CurrentUser:
    """Until authentication lands every caller is anonymous."""
    return ANONYMOUS
