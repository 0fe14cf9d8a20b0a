"""A follow-up's urgency and answer are sealed (issue 18 item 2): they say something about the
person's health ("urgent", "changed"), so they join the other sealed values.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

Adds `followups.sealed`, seals each row's urgency and answer into it under its person's key
(the master key as in 0013), then drops `urgency`, `answer` and the answer's CHECK. On SQLite
the table is rebuilt from its known definition (SQLite drops no column named in a CHECK);
nothing refers to `followups`, so dropping the old copy deletes nothing else. The downgrade
opens them again.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_ANSWER_CHECK = "ck_followups_answer"


def _followups(*extra: sa.Column[Any], answer_check: bool) -> sa.Table:
    """The table as 0007 made it, without `urgency` and `answer`, plus `extra` columns."""
    checks = [
        sa.CheckConstraint(
            "status IN ('offered', 'accepted', 'declined', 'sent', 'answered', 'cancelled',"
            " 'failed')",
            name="ck_followups_status",
        )
    ]
    if answer_check:
        checks.append(
            sa.CheckConstraint("answer IN ('seen', 'not_yet', 'changed')", name=_ANSWER_CHECK)
        )
    return sa.Table(
        "followups",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("offered_at", sa.DateTime(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("due_at", sa.DateTime(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("answered_at", sa.DateTime(), nullable=True),
        *extra,
        sa.PrimaryKeyConstraint("id", name="pk_followups"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_followups_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_followups_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("conversation_id", name="uq_followups_conversation_id"),
        *checks,
        sa.Index("ix_followups_user_id", "user_id"),
        sa.Index("ix_followups_status", "status"),
        sa.Index("ix_followups_due_at", "due_at"),
    )


def _plain() -> tuple[sa.Column[Any], ...]:
    """The plain columns before 0016 (nullable while they are filled)."""
    return (
        sa.Column("urgency", sa.String(16), nullable=True),
        sa.Column("answer", sa.String(16), nullable=True),
    )


def _answer_check_name() -> str:
    """The answer's CHECK as the database named it (0007's name went through the naming
    convention on PostgreSQL)."""
    if op.get_context().as_sql:
        return "ck_followups_ck_followups_answer"
    for check in sa.inspect(op.get_bind()).get_check_constraints("followups"):
        if "answer" in check["sqltext"] and check.get("name"):
            return str(check["name"])
    return _ANSWER_CHECK


def _sealer() -> Any:
    from sqlalchemy.orm import Session  # noqa: PLC0415

    from storage.sealing import Sealer, keyring_from_environment  # noqa: PLC0415

    context = op.get_context()
    keyring = context.config.attributes.get("keyring") if context.config else None
    if keyring is None:
        keyring = keyring_from_environment(op.get_bind().engine.url.render_as_string(False))
    return Sealer(Session(bind=op.get_bind()), keyring)


def _rows(table: str, *columns: str) -> list[sa.Row[Any]]:
    target = sa.table(table, *(sa.column(c) for c in columns))
    return list(op.get_bind().execute(sa.select(target)))


def _write(table: str, row_id: int, **values: Any) -> None:
    target = sa.table(table, sa.column("id"), *(sa.column(c) for c in values))
    op.get_bind().execute(target.update().where(target.c.id == row_id).values(**values))


def upgrade() -> None:
    from storage.followups import FOLLOWUP  # noqa: PLC0415

    op.add_column("followups", sa.Column("sealed", sa.LargeBinary(), nullable=True))
    if not op.get_context().as_sql:
        sealer = _sealer()
        for row in _rows("followups", "id", "user_id", "urgency", "answer"):
            body = {"urgency": row.urgency, "answer": row.answer}
            _write("followups", row.id, sealed=sealer.seal(row.user_id, FOLLOWUP, body))
    if op.get_bind().dialect.name == "sqlite":
        table = _followups(*_plain(), sa.Column("sealed", sa.LargeBinary()), answer_check=True)
        with op.batch_alter_table("followups", copy_from=table, recreate="always") as batch:
            batch.drop_constraint(op.f(_ANSWER_CHECK), type_="check")
            batch.drop_column("urgency")
            batch.drop_column("answer")
    else:
        op.drop_constraint(op.f(_answer_check_name()), "followups", type_="check")
        op.drop_column("followups", "urgency")
        op.drop_column("followups", "answer")


def downgrade() -> None:
    from storage.followups import FOLLOWUP  # noqa: PLC0415

    for column in _plain():
        op.add_column("followups", column)
    if not op.get_context().as_sql:
        sealer = _sealer()
        for row in _rows("followups", "id", "user_id", "sealed"):
            body = sealer.open(row.user_id, FOLLOWUP, row.sealed) or {}
            _write("followups", row.id, urgency=body.get("urgency"), answer=body.get("answer"))
    if op.get_bind().dialect.name == "sqlite":
        table = _followups(*_plain(), sa.Column("sealed", sa.LargeBinary()), answer_check=False)
        with op.batch_alter_table("followups", copy_from=table, recreate="always") as batch:
            batch.alter_column("urgency", existing_type=sa.String(16), nullable=False)
            batch.create_check_constraint(
                op.f(_ANSWER_CHECK), "answer IN ('seen', 'not_yet', 'changed')"
            )
            batch.drop_column("sealed")
    else:
        op.alter_column("followups", "urgency", existing_type=sa.String(16), nullable=False)
        op.create_check_constraint(
            op.f(_ANSWER_CHECK), "followups", "answer IN ('seen', 'not_yet', 'changed')"
        )
        op.drop_column("followups", "sealed")
