"""Outbox rows keep the highest message id known when first taken (`probe_floor`) and the id
of the person's message they reply to (`after_id`), and both kinds of id are indexed: the
probe for a lost send looks at the ids above that floor, in every chat, since a bot's
private chats share one counter of message ids.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

Existing rows start without a floor: an undelivered one is probed from its chat's newest id.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("probe_floor", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("after_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_outbox_message_id", "outbox", ["message_id"], unique=False)
    op.create_index("ix_outbox_after_id", "outbox", ["after_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_after_id", table_name="outbox")
    op.drop_index("ix_outbox_message_id", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("after_id")
        batch.drop_column("probe_floor")
