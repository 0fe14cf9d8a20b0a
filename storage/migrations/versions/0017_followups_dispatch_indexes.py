"""The follow-up dispatcher's reads each take one index range: accepted and due
(`status`, `due_at`), accepted and timed without a zone (`status`, `timezone`).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07

Issue 18, big tables: with a million people (5,000 accepted follow-ups), each read went through
every accepted row, 17 ms each, every 30 s, in the bot's event loop. The single-column indexes
on `status` and `due_at` are replaced.
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_followups_status_due_at", "followups", ["status", "due_at"])
    op.create_index("ix_followups_status_timezone", "followups", ["status", "timezone"])
    op.drop_index("ix_followups_status", table_name="followups")
    op.drop_index("ix_followups_due_at", table_name="followups")


def downgrade() -> None:
    op.create_index("ix_followups_due_at", "followups", ["due_at"])
    op.create_index("ix_followups_status", "followups", ["status"])
    op.drop_index("ix_followups_status_timezone", table_name="followups")
    op.drop_index("ix_followups_status_due_at", table_name="followups")
