"""The language a person chose (`/language`); empty: their Telegram app's language.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

Issue 17, "Every person in their own language".
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("language", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("language")
