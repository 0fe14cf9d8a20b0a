"""`python -m storage`: the database's own commands.

- `migrate`: bring the database in `$DATABASE_URL` to the newest schema. The bot runs this in
  a child process before it starts, so the long-running process never loads alembic.
- `backup PATH [--force]`: copy the SQLite database to PATH (mode 600) while the bot runs.
- `restore PATH [--force]`: put a backup back; refused while the database is in use, and
  without `--force` when the database holds people (see `storage.backup`).

The URL comes from the environment, not the command line, where other users of the machine
could read a password in it. `backup` and `restore` also read `.env` like the bot, and fall
back to the bot's default database; on PostgreSQL they say how to use `pg_dump`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dotenv import dotenv_values
from sqlalchemy.engine import make_url

from storage.backup import BackupError, backup, restore
from storage.db import make_engine, migrate

DEFAULT_URL = "sqlite:///data/nightlegs.db"
"""The bot's default (`bot.settings.Settings.database_url`)."""


def database_url(env_file: Path = Path(".env")) -> str:
    """DATABASE_URL from the environment, else `.env`, else the bot's default."""
    url = os.environ.get("DATABASE_URL")
    if not url and env_file.is_file():
        url = dotenv_values(env_file, encoding="utf-8").get("DATABASE_URL")
    return (url or "").strip() or DEFAULT_URL


def main(argv: list[str]) -> int:
    if argv == ["migrate"]:
        if not os.environ.get("DATABASE_URL"):
            print("usage: DATABASE_URL=... python -m storage migrate", file=sys.stderr)
            return 2
        engine = make_engine(os.environ["DATABASE_URL"])
        try:
            migrate(engine)
        finally:
            engine.dispose()
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m storage",
        description="Back up or restore the bot's database (DATABASE_URL, .env, or the "
        "default sqlite:///data/nightlegs.db). 'migrate' upgrades the schema.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    copy = commands.add_parser("backup", help="copy the SQLite database, online, to PATH")
    copy.add_argument("path", type=Path)
    copy.add_argument("--force", action="store_true", help="replace PATH if it exists")
    back = commands.add_parser("restore", help="replace the database with the backup at PATH")
    back.add_argument("path", type=Path)
    back.add_argument(
        "--force", action="store_true", help="replace a database that holds people's data"
    )
    commands.add_parser("migrate", help="bring $DATABASE_URL to the newest schema")
    args = parser.parse_args(argv)
    url = database_url()
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        if args.command == "backup":
            done = backup(url, args.path, force=args.force)
            print(f"backed up {shown} to {done.path}: {done.pages} pages, {done.people} people")
        else:
            done = restore(url, args.path, force=args.force)
            print(f"restored {args.path} into {done.path}: {done.people} people")
    except BackupError as exc:
        print(f"python -m storage {args.command}: {exc}", file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
