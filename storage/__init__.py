"""Persistence for nightlegs: users, conversations, answers and the message transcript.

Adapters use `Store` (open a database, run a transaction) and the `Repo` it yields; `make_engine`
and `migrate` are the lower-level pieces `Store.open` is built from.
"""

from storage.db import make_engine, migrate
from storage.store import MessageInfo, NotFound, Repo, Store, UserInfo, utc_now

__all__ = [
    "MessageInfo",
    "NotFound",
    "Repo",
    "Store",
    "UserInfo",
    "make_engine",
    "migrate",
    "utc_now",
]
