"""Night diary: check-in schedules, one check-in and one entry per user and night.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

Only new tables: existing rows are untouched. Datetime columns hold naive UTC.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "diary_schedules",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("local_time", sa.String(5), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("next_due_at", sa.DateTime(), nullable=True),
        sa.Column("next_night", sa.Date(), nullable=True),
        sa.Column("paused_until", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_diary_schedules"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_diary_schedules_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_diary_schedules_next_due_at", "diary_schedules", ["next_due_at"])
    op.create_table(
        "diary_checkins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("night", sa.Date(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sending_at", sa.DateTime(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("remind_at", sa.DateTime(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("backfill", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_diary_checkins"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_diary_checkins_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_diary_checkins_conversation_id_conversations",
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint("user_id", "night", name="uq_diary_checkins_user_id_night"),
        sa.CheckConstraint(
            "status IN ('due', 'sending', 'sent', 'snoozed', 'answered', 'skipped', 'missed',"
            " 'failed')",
            name="ck_diary_checkins_status",
        ),
    )
    op.create_index("ix_diary_checkins_user_id", "diary_checkins", ["user_id"])
    op.create_index("ix_diary_checkins_status", "diary_checkins", ["status"])
    op.create_index("ix_diary_checkins_conversation_id", "diary_checkins", ["conversation_id"])
    op.create_table(
        "diary_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("night", sa.Date(), nullable=False),
        sa.Column("backfilled", sa.Boolean(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("red_flags", sa.JSON(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_diary_entries"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_diary_entries_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_diary_entries_conversation_id_conversations",
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint("user_id", "night", name="uq_diary_entries_user_id_night"),
    )
    op.create_index("ix_diary_entries_user_id", "diary_entries", ["user_id"])


def downgrade() -> None:
    op.drop_table("diary_entries")
    op.drop_table("diary_checkins")
    op.drop_table("diary_schedules")
