"""Parked webhook events get an age limit: `webhook_events.overdue_at` is set by the sweep (in the
`settlements.reconcile` job) on an event still parked after the limit, its entity never seen. The
event stays parked (and is still applied if the entity appears): flagged, never dropped
(docs/reliability.md, "Parked webhook events").

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: no table rewrite, a brief lock.
    op.add_column("webhook_events", sa.Column("overdue_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("webhook_events", "overdue_at")
