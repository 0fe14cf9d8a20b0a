"""Outbox rows remember the ids their probe already tried (`probed`), so a probe cut short
by restarts goes on where it stopped instead of starting again each time.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

Issue 18: with kills every few seconds and 50-300 ms per call, a probe of up to 30 edits
never finished within one process's life, and its send never went out.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("probed", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("probed")
