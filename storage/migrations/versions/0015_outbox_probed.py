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
    op.add_column("outbox", sa.Column("probed", sa.Text(), nullable=True))


def downgrade() -> None:
    # Not batch mode: on SQLite it would copy and drop `outbox`, and dropping a table
    # deletes what refers to it (ON DELETE CASCADE). SQLite drops a column itself (3.35+).
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE outbox DROP COLUMN probed")
    else:
        op.drop_column("outbox", "probed")
