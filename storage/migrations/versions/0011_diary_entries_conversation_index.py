"""Index diary entries by their conversation, so erasing a person does not read the whole
diary_entries table once per conversation deleted.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

Deleting a conversation sets `diary_entries.conversation_id` to NULL in the entries that
point at it (ON DELETE SET NULL). Without an index on that column the database looks for them
by reading every entry, once per deleted conversation: with a million people, `/delete` of
someone with two years of diary read the table 733 times. Issue 18, "Big tables".
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_diary_entries_conversation_id", "diary_entries", ["conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_diary_entries_conversation_id", table_name="diary_entries")
