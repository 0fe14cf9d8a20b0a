"""Index transcript messages by time, so the retention run deletes the old ones without
reading the whole transcript.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

`TRANSCRIPT_RETENTION_DAYS` deletes messages older than a moment; without an index on
`created_at` each run read every message (ten million with a million people). Messages are
added in time order, so the index grows at its end. Issue 18, "Big tables".
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_created_at", "messages", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_created_at", table_name="messages")
