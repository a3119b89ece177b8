"""Deliveries in doubt decided by the liveness of the job that claimed them: a delivery in `sending`
records the job and attempt whose worker is calling the provider; once that attempt's lease has run
out (its worker died) the campaign reconciler resolves it, within two minutes, instead of after a
fixed ten. The reconciler runs every minute (docs/reliability.md).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: adding them rewrites nothing and takes only a brief lock.
    op.add_column("message_deliveries", sa.Column("sending_job_id", sa.Uuid(), nullable=True))
    op.add_column("message_deliveries", sa.Column("sending_attempt", sa.Integer(), nullable=True))
    # Only the seeded cadence moves: an operator's own edit of the schedule stays.
    op.execute("UPDATE schedules SET cron = '* * * * *' WHERE name = 'campaigns.reconcile' AND cron = '*/5 * * * *'")


def downgrade() -> None:
    op.execute("UPDATE schedules SET cron = '*/5 * * * *' WHERE name = 'campaigns.reconcile' AND cron = '* * * * *'")
    op.drop_column("message_deliveries", "sending_attempt")
    op.drop_column("message_deliveries", "sending_job_id")
