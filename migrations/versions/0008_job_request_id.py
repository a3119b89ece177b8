"""The request id of the command behind a job: the submitting request's X-Request-ID (or one per
scheduler firing), so a job's worker log lines and provider calls join the API's (docs/observability.md).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites nothing and takes only a brief lock.
    op.add_column("jobs", sa.Column("request_id", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "request_id")
