"""`python -m storage migrate`: bring the database in `$DATABASE_URL` to the newest schema.

The bot runs this in a child process before it starts, so the long-running process never
loads alembic. The URL comes from the environment, not the command line, where other users
of the machine could read a password in it.
"""

from __future__ import annotations

import os
import sys

from storage.db import make_engine, migrate


def main(argv: list[str]) -> int:
    if argv != ["migrate"] or not os.environ.get("DATABASE_URL"):
        print("usage: DATABASE_URL=... python -m storage migrate", file=sys.stderr)
        return 2
    engine = make_engine(os.environ["DATABASE_URL"])
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
