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
    op.add_column("users", sa.Column("language", sa.String(8), nullable=True))


def downgrade() -> None:
    # Not batch mode: on SQLite it would copy and drop `users`, and dropping a table
    # deletes what refers to it (ON DELETE CASCADE). SQLite drops a column itself (3.35+).
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE users DROP COLUMN language")
    else:
        op.drop_column("users", "language")
