"""A note for the doctor (spec v3 item 10): the person's own words, kept with a check's result.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

Two nullable columns on conversations: existing rows are untouched (no note, none asked).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("note_asked_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("note_asked_at")
        batch.drop_column("note")
