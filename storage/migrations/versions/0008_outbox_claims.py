"""Outbox rows count the times they were handed to a sender, so one handed out before and
still undelivered is known to be possibly shown already (see `bot.telegram.delivery`).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

Existing rows start at 0: an undelivered one is then treated as never tried, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claims", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claims")
