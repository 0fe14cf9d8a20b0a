"""Sealed health data (issue 18 item 2): a data key per person, and every column holding health
data or a person's words sealed under it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

Adds `person_keys` and a `sealed` column to conversations, answers, messages and
diary_entries; seals every existing row into it (so no upgrade loses data), then drops the
plain columns; outbox payloads still waiting to be sent are sealed in place. Columns change
by add, copy, drop and rename, which SQLite does in place: a rebuilt `conversations` would
cascade its deletion to the answers. The master key is the one `Store.open` is given, or for
a command-line run `MASTER_KEY`, `MASTER_KEY_FILE` or the default key file. The downgrade
opens everything again into plain columns.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# The plain columns each table had before, by their type then.
_PLAIN: dict[str, list[tuple[str, Any]]] = {
    "conversations": [
        ("pending", sa.JSON()),
        ("findings", sa.JSON()),
        ("conclusion_pattern", sa.String(64)),
        ("conclusion_urgency", sa.String(32)),
        ("conclusion_red_flags", sa.JSON(none_as_null=True)),
        ("note", sa.Text()),
    ],
    "answers": [("question_id", sa.String(64)), ("option_ids", sa.JSON()), ("text", sa.Text())],
    "messages": [("text", sa.Text()), ("meta", sa.JSON(none_as_null=True))],
    "diary_entries": [("values", sa.JSON()), ("findings", sa.JSON()), ("red_flags", sa.JSON())],
}


def _keyring() -> Any:
    from storage.sealing import keyring_from_environment  # noqa: PLC0415

    given = op.get_context().config.attributes.get("keyring") if op.get_context().config else None
    if given is not None:
        return given
    return keyring_from_environment(op.get_bind().engine.url.render_as_string(False))


def _table(name: str, *columns: tuple[str, Any]) -> sa.TableClause:
    return sa.table(name, sa.column("id", sa.Integer), *(sa.column(c, t) for c, t in columns))


def _sealer() -> Any:
    from sqlalchemy.orm import Session  # noqa: PLC0415

    from storage.sealing import Sealer  # noqa: PLC0415

    return Sealer(Session(bind=op.get_bind()), _keyring())


def _has_rows(*tables: str) -> bool:
    bind = op.get_bind()
    return any(bind.execute(sa.text(f"SELECT 1 FROM {t} LIMIT 1")).first() for t in tables)


def _swap_payload() -> None:
    """Put `outbox.payload_new` (filled by the caller) in place of `payload`."""
    op.execute("ALTER TABLE outbox DROP COLUMN payload")
    op.execute("ALTER TABLE outbox RENAME COLUMN payload_new TO payload")


def upgrade() -> None:
    op.create_table(
        "person_keys",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_person_keys_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name="pk_person_keys"),
    )
    for table in _PLAIN:
        op.add_column(table, sa.Column("sealed", sa.LargeBinary(), nullable=True))
    op.add_column("outbox", sa.Column("payload_new", sa.LargeBinary(), nullable=True))
    bind = op.get_bind()
    if not op.get_context().as_sql and _has_rows("users", "outbox"):
        _seal_rows(bind)
    for table, columns in _PLAIN.items():
        for column, _ in columns:
            op.execute(f'ALTER TABLE {table} DROP COLUMN "{column}"')
    _swap_payload()


def _seal_rows(bind: sa.Connection) -> None:
    from storage.outbox import PAYLOAD  # noqa: PLC0415
    from storage.store import ANSWER, CONVERSATION, MESSAGE  # noqa: PLC0415

    sealer = _sealer()
    users = sa.table("users", sa.column("id"), sa.column("channel"), sa.column("external_id"))
    people = {}
    for user_id, channel, external_id in bind.execute(
        sa.select(users.c.id, users.c.channel, users.c.external_id)
    ):
        sealer.create_key(user_id)
        if channel == "telegram":
            people[external_id] = user_id

    conversations = _table("conversations", ("user_id", sa.Integer), *_PLAIN["conversations"])
    for row in bind.execute(sa.select(conversations)).mappings().all():
        conclusion = None
        if row["conclusion_pattern"] is not None and row["conclusion_urgency"] is not None:
            conclusion = [
                row["conclusion_pattern"],
                row["conclusion_urgency"],
                list(row["conclusion_red_flags"] or ()),
            ]
        body = {
            "pending": list(row["pending"] or ()),
            "findings": dict(row["findings"] or {}),
            "conclusion": conclusion,
            "note": row["note"],
        }
        _set(bind, "conversations", row["id"], sealer.seal(row["user_id"], CONVERSATION, body))

    answers = _table("answers", ("conversation_id", sa.Integer), *_PLAIN["answers"])
    owner = sa.select(conversations.c.user_id).where(
        conversations.c.id == answers.c.conversation_id
    )
    query = sa.select(answers, owner.scalar_subquery().label("user_id"))
    for row in bind.execute(query).mappings().all():
        body = [row["question_id"], list(row["option_ids"] or ()), row["text"]]
        _set(bind, "answers", row["id"], sealer.seal(row["user_id"], ANSWER, body))

    messages = _table("messages", ("user_id", sa.Integer), *_PLAIN["messages"])
    for row in bind.execute(sa.select(messages)).mappings().all():
        body = [row["text"], row["meta"]]
        _set(bind, "messages", row["id"], sealer.seal(row["user_id"], MESSAGE, body))

    from storage.diary import ENTRY  # noqa: PLC0415

    entries = _table("diary_entries", ("user_id", sa.Integer), *_PLAIN["diary_entries"])
    for row in bind.execute(sa.select(entries)).mappings().all():
        body = [dict(row["values"]), dict(row["findings"]), list(row["red_flags"])]
        _set(bind, "diary_entries", row["id"], sealer.seal(row["user_id"], ENTRY, body))

    outbox = _table("outbox", ("chat_id", sa.BigInteger), ("payload", sa.JSON(none_as_null=True)))
    for row in bind.execute(sa.select(outbox).where(outbox.c.payload.is_not(None))).mappings():
        person = people.get(str(row["chat_id"]))
        blob = sealer.seal_if_known(person, PAYLOAD, row["payload"])
        bind.execute(
            sa.table("outbox", sa.column("id"), sa.column("payload_new", sa.LargeBinary))
            .update()
            .where(sa.column("id") == row["id"])
            .values(payload_new=blob)
        )


def _set(bind: sa.Connection, table: str, row_id: int, blob: bytes) -> None:
    target = sa.table(table, sa.column("id"), sa.column("sealed", sa.LargeBinary))
    bind.execute(target.update().where(target.c.id == row_id).values(sealed=blob))


def downgrade() -> None:
    for table, columns in _PLAIN.items():
        for column, kind in columns:
            op.add_column(table, sa.Column(column, kind, nullable=True))
    op.add_column("outbox", sa.Column("payload_new", sa.JSON(none_as_null=True), nullable=True))
    if not op.get_context().as_sql and _has_rows("users", "outbox"):
        _open_rows(op.get_bind())
    for table in _PLAIN:
        op.execute(f"ALTER TABLE {table} DROP COLUMN sealed")
    _swap_payload()
    op.drop_table("person_keys")
    _keyring().forget_all()  # a keyring used before must not seal with the dropped keys


def _open_rows(bind: sa.Connection) -> None:
    from storage.diary import ENTRY  # noqa: PLC0415
    from storage.outbox import PAYLOAD  # noqa: PLC0415
    from storage.store import ANSWER, CONVERSATION, MESSAGE  # noqa: PLC0415

    sealer = _sealer()
    sealed = ("sealed", sa.LargeBinary)
    conversations = _table(
        "conversations", ("user_id", sa.Integer), sealed, *_PLAIN["conversations"]
    )
    for row in bind.execute(
        sa.select(conversations.c.id, conversations.c.user_id, conversations.c.sealed)
    ).all():
        body = sealer.open(row.user_id, CONVERSATION, row.sealed) or {}
        pattern, urgency, red_flags = body.get("conclusion") or (None, None, None)
        bind.execute(
            conversations.update()
            .where(conversations.c.id == row.id)
            .values(
                pending=body.get("pending", []),
                findings=body.get("findings", {}),
                conclusion_pattern=pattern,
                conclusion_urgency=urgency,
                conclusion_red_flags=red_flags,
                note=body.get("note"),
            )
        )
    answers = _table("answers", ("conversation_id", sa.Integer), sealed, *_PLAIN["answers"])
    owner = sa.select(conversations.c.user_id).where(
        conversations.c.id == answers.c.conversation_id
    )
    query = sa.select(answers.c.id, answers.c.sealed, owner.scalar_subquery().label("user_id"))
    for row in bind.execute(query).all():
        question_id, option_ids, typed = sealer.open(row.user_id, ANSWER, row.sealed)
        bind.execute(
            answers.update()
            .where(answers.c.id == row.id)
            .values(question_id=question_id, option_ids=option_ids, text=typed)
        )
    messages = _table("messages", ("user_id", sa.Integer), sealed, *_PLAIN["messages"])
    for row in bind.execute(sa.select(messages.c.id, messages.c.user_id, messages.c.sealed)):
        typed, meta = sealer.open(row.user_id, MESSAGE, row.sealed)
        bind.execute(messages.update().where(messages.c.id == row.id).values(text=typed, meta=meta))
    entries = _table("diary_entries", ("user_id", sa.Integer), sealed, *_PLAIN["diary_entries"])
    for row in bind.execute(sa.select(entries.c.id, entries.c.user_id, entries.c.sealed)).all():
        values, findings, red_flags = sealer.open(row.user_id, ENTRY, row.sealed)
        bind.execute(
            entries.update()
            .where(entries.c.id == row.id)
            .values(values=values, findings=findings, red_flags=red_flags)
        )
    users = sa.table("users", sa.column("id"), sa.column("channel"), sa.column("external_id"))
    people = {
        external_id: user_id
        for user_id, channel, external_id in bind.execute(sa.select(users))
        if channel == "telegram"
    }
    outbox = _table(
        "outbox",
        ("chat_id", sa.BigInteger),
        ("payload", sa.LargeBinary),
        ("payload_new", sa.JSON(none_as_null=True)),
    )
    rows = bind.execute(
        sa.select(outbox.c.id, outbox.c.chat_id, outbox.c.payload).where(
            outbox.c.payload.is_not(None)
        )
    ).all()
    for row in rows:
        payload = sealer.open(people.get(str(row.chat_id)), PAYLOAD, row.payload)
        bind.execute(outbox.update().where(outbox.c.id == row.id).values(payload_new=payload))
