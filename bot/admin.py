"""Command line for whoever runs the bot: exports, erasure and transcript retention.

    python -m bot.admin [--database-url URL] export-user --user TELEGRAM_ID --out FILE.json
    python -m bot.admin [--database-url URL] export-all --out-dir DIR
    python -m bot.admin [--database-url URL] delete-user --user TELEGRAM_ID --yes
    python -m bot.admin [--database-url URL] retention --days N
    python -m bot.admin [--database-url URL] rekey [--new-key-file FILE]

The database is DATABASE_URL (from the environment or .env, as for the bot) unless
--database-url is given; a SQLite file that does not exist is an error, not a new database.
Users are named by their Telegram id. An export is `storage.export.export_user` as JSON in a
new file (an existing one is never overwritten) of mode 0o600; `export-all` writes one file per
user, named after that user, into a new or empty folder of mode 0o700. A problem is one line
on stderr and exit status 1; bad arguments exit with status 2 and the usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from bot.settings import Settings, SettingsError, load_settings
from storage import Repo, Store, UserInfo, utc_now
from storage.db import RETENTION_TABLES
from storage.export import export_user
from storage.sealing import MasterKey, default_key_file

TELEGRAM = "telegram"


class AdminError(Exception):
    """A problem reported as one line, with exit status 1."""


def _telegram_id(text: str) -> str:
    """argparse type: a Telegram user id (a positive whole number), as the database stores it."""
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a Telegram user id")
    return str(int(text))


def _days(text: str) -> int:
    """argparse type: a whole number of days, at least 1."""
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days, at least 1")
    return int(text)


def _find(repo: Repo, telegram_id: str) -> UserInfo:
    user = repo.find_user(TELEGRAM, telegram_id)
    if user is None:
        raise AdminError(f"no user with Telegram id {telegram_id}")
    return user


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as JSON to a new file that only its owner can read or write."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AdminError(f"{path} already exists; choose a new file name") from None
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)  # whatever the umask
        json.dump(data, file, ensure_ascii=False, indent=2)
        file.write("\n")


def _private_dir(path: Path) -> None:
    """Create `path` (mode 0o700), or make an existing empty folder 0o700."""
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
    elif not path.is_dir() or any(path.iterdir()):
        raise AdminError(f"{path} exists and is not an empty folder")
    path.chmod(0o700)


def _file_name(user: UserInfo) -> str:
    """The user's own file name, e.g. "telegram-123456.json"; no path separators get through."""
    return f"{quote(user.channel, safe='')}-{quote(user.external_id, safe='')}.json"


def _export_user(store: Store, args: argparse.Namespace) -> str:
    with store.transaction() as repo:
        data = export_user(repo, _find(repo, args.user).id, exported_at=utc_now())
    _write_private(args.out, data)
    return f"wrote the data of Telegram user {args.user} to {args.out}"


def _export_all(store: Store, args: argparse.Namespace) -> str:
    _private_dir(args.out_dir)
    now = utc_now()
    with store.transaction() as repo:
        ids = repo.user_ids()
        for user_id in ids:
            user = repo.user_by_id(user_id)
            _write_private(
                args.out_dir / _file_name(user), export_user(repo, user_id, exported_at=now)
            )
    return f"wrote {len(ids)} user exports to {args.out_dir}"


def _delete_user(store: Store, args: argparse.Namespace) -> str:
    with store.transaction() as repo:
        user = _find(repo, args.user)
        counts = repo.user_row_counts(user.id)
    store.erase_user(user.id)  # the person's key is destroyed first, in its own transaction
    detail = ", ".join(f"{table} {count}" for table, count in counts.items() if count)
    return f"deleted Telegram user {args.user}: {sum(counts.values())} rows ({detail})"


def _rekey(store: Store, args: argparse.Namespace) -> str:
    """Rewrap every person's data key under a new master key (the data stays as it is).

    With --new-key-file the new key is read from that file (e.g. written by a secrets
    manager): set MASTER_KEY or MASTER_KEY_FILE to it afterwards. Without it, the master key
    file in use is replaced: the new key is written next to it (mode 600), the rewrap commits,
    then the new file takes the old one's place and the old key is gone."""
    settings = args.settings
    if args.new_key_file is not None:
        new = MasterKey.from_file(args.new_key_file, create=False)
        with store.transaction() as repo:
            count = repo.sealer.rewrap(new)
        return f"rewrapped {count} people's keys under master key {new.key_id}; use it from now on"
    if settings.master_key is not None:
        raise AdminError("MASTER_KEY is set: give the new key with --new-key-file")
    current = settings.master_key_file or default_key_file(settings.database_url)
    if current is None:
        raise AdminError("an in-memory database has no key file to rotate")
    staged = current.with_name(current.name + ".new")
    if staged.exists():
        staged.unlink()  # left by a rotation that stopped before its commit
    new = MasterKey.from_file(staged)
    with store.transaction() as repo:
        count = repo.sealer.rewrap(new)
    staged.replace(current)
    return f"rewrapped {count} people's keys under master key {new.key_id} in {current}"


def _retention(store: Store, args: argparse.Namespace) -> str:
    before = utc_now() - timedelta(days=args.days)
    with store.transaction() as repo:
        removed = repo.prune_messages(before)
    store.erase_traces(RETENTION_TABLES)
    return f"removed {removed} transcript messages older than {args.days} days"


Command = Callable[[Store, argparse.Namespace], str]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot.admin", description="Export, erase and prune nightlegs data."
    )
    parser.add_argument(
        "--database-url", metavar="URL", help="SQLAlchemy URL (default: DATABASE_URL)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    command = commands.add_parser("export-user", help="write one user's data to a new JSON file")
    command.add_argument("--user", type=_telegram_id, required=True, metavar="TELEGRAM_ID")
    command.add_argument("--out", type=Path, required=True, metavar="FILE.json")
    command.set_defaults(run=_export_user)

    command = commands.add_parser("export-all", help="write each user's data to its own file")
    command.add_argument("--out-dir", type=Path, required=True, metavar="DIR")
    command.set_defaults(run=_export_all)

    command = commands.add_parser("delete-user", help="erase every row about one user")
    command.add_argument("--user", type=_telegram_id, required=True, metavar="TELEGRAM_ID")
    command.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")
    command.set_defaults(run=_delete_user)

    command = commands.add_parser(
        "rekey", help="rewrap every person's key under a new master key (rotation)"
    )
    command.add_argument("--new-key-file", type=Path, metavar="FILE", help="the new key (base64)")
    command.set_defaults(run=_rekey)

    command = commands.add_parser("retention", help="remove transcript messages older than N days")
    command.add_argument("--days", type=_days, required=True, metavar="N")
    command.set_defaults(run=_retention)
    return parser


def _open(settings: Settings) -> Store:
    """Open the database at DATABASE_URL, refusing to create a SQLite file that is not there."""
    url = settings.database_url
    parsed = make_url(url)
    database = parsed.database or ""
    if (
        parsed.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not database.startswith("file:")
        and not Path(database).is_file()
    ):
        raise AdminError(f"no database file at {database} (check DATABASE_URL or --database-url)")
    return Store.open(url, keyring=settings.keyring())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "delete-user" and not args.yes:
        parser.error("delete-user erases every row about the user for good: add --yes")
    run: Command = args.run
    overrides = {} if args.database_url is None else {"database_url": args.database_url}
    try:
        settings = load_settings(**overrides)
        args.settings = settings
        store = _open(settings)
        try:
            print(run(store, args))
        finally:
            store.dispose()
    except (AdminError, SettingsError, OSError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    except OperationalError as exc:  # e.g. no PostgreSQL server or database at that URL
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else "unreachable"
        print(f"{parser.prog}: error: cannot use the database: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
