"""Sealing: health data and people's words encrypted at rest, one key per person.

Envelope encryption. A master key (32 bytes, from `MASTER_KEY` or a key file made on first run
with mode 600) wraps each person's random data key, kept in `person_keys` with the master
key's id. Every sealed value is AES-GCM under the person's data key with a fresh 96-bit
nonce, and associated data naming its table, column and person, so a value cannot be moved
to another column or person. Destroying a person's key row (crypto-shredding) leaves every
copy of their values, in backups, WAL and replicas too, unreadable.

Only the repositories in `storage/` call this module; features see plain values.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from storage.models import PersonKey

PLAIN, SEALED = b"\x00", b"\x01"
"""First byte of a stored value: left plain (no person to seal for: outbox rows to a chat
whose person is gone), or sealed under the person's key."""
NONCE = 12
KEY_BYTES = 32
UNSEALED_FOR_BENCHMARK = False
"""Set only by `scripts/bench_taps.py` in a bot process it starts, for the baseline of the
sealing cost: no setting turns sealing off."""
CACHE_SIZE = 10_000
"""Unwrapped data keys kept in memory per process, the most recently used."""


class SealingError(RuntimeError):
    """A value that cannot be opened: no key for its person, or not theirs, or tampered."""


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _aad(where: str, user_id: int) -> bytes:
    return f"{where}|{user_id}".encode()


def seal_with(key: AESGCM, user_id: int, where: str, value: Any) -> bytes:
    """`value` sealed under the person's data key `key`, bound to `where` and the person."""
    nonce = secrets.token_bytes(NONCE)
    return SEALED + nonce + key.encrypt(nonce, _dumps(value), _aad(where, user_id))


@dataclass(frozen=True, repr=False)
class MasterKey:
    """The key that wraps every person's data key; `key_id` names it in their rows."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise ValueError(f"a master key has {KEY_BYTES} bytes, not {len(self.secret)}")

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r})"

    @property
    def key_id(self) -> str:
        """A short fingerprint (not the key): which master key wrapped a row."""
        return hashlib.sha256(b"nightlegs master key id|" + self.secret).hexdigest()[:16]

    @classmethod
    def from_base64(cls, text: str) -> MasterKey:
        return cls(base64.b64decode(text.strip(), validate=True))

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    def to_base64(self) -> str:
        return base64.b64encode(self.secret).decode()

    @classmethod
    def from_file(cls, path: Path, *, create: bool = True) -> MasterKey:
        """Read the key file; if there is none (and `create`), make one, mode 600."""
        if not path.exists() and create:
            if not path.parent.exists():
                path.parent.mkdir(parents=True, mode=0o700)
            key = cls.generate()
            # Written whole to a file of its own, then linked into place: a kill leaves no
            # empty key file, and of processes starting together the first one's key wins.
            staged = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as file:
                    file.write(key.to_base64() + "\n")
                    file.flush()
                    os.fsync(file.fileno())
                with contextlib.suppress(FileExistsError):  # another process was first
                    os.link(staged, path)
            finally:
                staged.unlink()
        return cls.from_base64(path.read_text())

    def wrap(self, data_key: bytes, user_id: int) -> bytes:
        nonce = secrets.token_bytes(NONCE)
        return nonce + AESGCM(self.secret).encrypt(nonce, data_key, _aad("person_keys", user_id))

    def unwrap(self, wrapped: bytes, user_id: int) -> bytes:
        aad = _aad("person_keys", user_id)
        return AESGCM(self.secret).decrypt(wrapped[:NONCE], wrapped[NONCE:], aad)


class Keyring:
    """The master key (and older ones, to read rows not yet rewrapped) and a cache of
    unwrapped data keys. One per Store; `enabled=False` stores values plain (the tap
    benchmark's baseline only)."""

    def __init__(
        self,
        master: MasterKey,
        *,
        older: tuple[MasterKey, ...] = (),
        enabled: bool | None = None,
    ) -> None:
        self.master = master
        self._masters = {key.key_id: key for key in (*older, master)}
        self.enabled = not UNSEALED_FOR_BENCHMARK if enabled is None else enabled
        self._cache: OrderedDict[int, AESGCM] = OrderedDict()
        self.chats: dict[int, int] = {}
        """Telegram chat id -> person id, for sealing outbox payloads (cleared on erasure)."""

    def __repr__(self) -> str:
        return f"Keyring(master={self.master!r}, enabled={self.enabled})"

    def cached(self, user_id: int) -> AESGCM | None:
        found = self._cache.get(user_id)
        if found is not None:
            self._cache.move_to_end(user_id)
        return found

    def remember(self, user_id: int, key: AESGCM) -> None:
        self._cache[user_id] = key
        self._cache.move_to_end(user_id)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def forget(self, user_id: int) -> None:
        self._cache.pop(user_id, None)
        for chat_id in [chat for chat, person in self.chats.items() if person == user_id]:
            del self.chats[chat_id]

    def forget_all(self) -> None:
        """Drop every cached key (the migration that removes `person_keys` calls it)."""
        self._cache.clear()
        self.chats.clear()

    def unwrap(self, row: PersonKey) -> bytes:
        master = self._masters.get(row.key_id)
        if master is None:
            raise SealingError(f"person {row.user_id}'s key is wrapped by an unknown master key")
        return master.unwrap(row.wrapped, row.user_id)


class Sealer:
    """Seals and opens values within one Session (one transaction)."""

    def __init__(self, session: Session, keyring: Keyring) -> None:
        self._session = session
        self._keyring = keyring
        self._new: dict[int, AESGCM] = {}
        """Keys created in this transaction: cached only once it commits."""

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    def committed(self) -> None:
        for user_id, key in self._new.items():
            self._keyring.remember(user_id, key)
        self._new.clear()

    def _key(self, user_id: int, *, create: bool) -> AESGCM | None:
        key = self._new.get(user_id) or self._keyring.cached(user_id)
        if key is not None:
            return key
        row = self._session.get(PersonKey, user_id)
        if row is not None:
            key = AESGCM(self._keyring.unwrap(row))
            self._keyring.remember(user_id, key)
            return key
        if not create:
            return None
        return self.create_key(user_id)

    def create_key(self, user_id: int) -> AESGCM:
        """A new random data key for the person, stored wrapped by the master key."""
        data_key = AESGCM.generate_key(bit_length=256)
        master = self._keyring.master
        self._session.execute(
            insert(PersonKey).values(
                user_id=user_id, key_id=master.key_id, wrapped=master.wrap(data_key, user_id)
            )
        )
        key = AESGCM(data_key)
        self._new[user_id] = key
        return key

    def seal(self, user_id: int, where: str, value: Any) -> bytes:
        """`value` (anything JSON can hold) sealed for the person, bound to `where`."""
        if not self._keyring.enabled:
            return PLAIN + _dumps(value)
        key = self._key(user_id, create=True)
        assert key is not None
        return seal_with(key, user_id, where, value)

    def seal_if_known(self, user_id: int | None, where: str, value: Any) -> bytes:
        """Sealed for the person if they are known and have a key, else plain."""
        if user_id is None or not self._keyring.enabled:
            return PLAIN + _dumps(value)
        key = self._key(user_id, create=False)
        if key is None:
            return PLAIN + _dumps(value)
        return seal_with(key, user_id, where, value)

    def open(self, user_id: int | None, where: str, blob: bytes | None) -> Any:
        """The value `seal` sealed; None stays None."""
        if blob is None:
            return None
        blob = bytes(blob)
        if blob[:1] == PLAIN:
            return json.loads(blob[1:])
        if blob[:1] != SEALED or user_id is None:
            raise SealingError(f"{where}: not a sealed value")
        key = self._key(user_id, create=False)
        if key is None:
            raise SealingError(f"{where}: person {user_id} has no key (erased)")
        body = blob[1:]
        try:
            plain = key.decrypt(body[:NONCE], body[NONCE:], _aad(where, user_id))
        except Exception as error:  # cryptography's InvalidTag
            raise SealingError(f"{where}: cannot be opened with person {user_id}'s key") from error
        return json.loads(plain)

    def shred(self, user_id: int) -> bool:
        """Destroy the person's key row (the caller commits at once); False if there was none."""
        self._keyring.forget(user_id)
        self._new.pop(user_id, None)
        result = self._session.execute(delete(PersonKey).where(PersonKey.user_id == user_id))
        return bool(result.rowcount)

    def rewrap(self, new_master: MasterKey) -> int:
        """Wrap every person's data key under `new_master`; returns how many were rewrapped."""
        rows = self._session.scalars(select(PersonKey)).all()
        for row in rows:
            data_key = self._keyring.unwrap(row)
            row.wrapped = new_master.wrap(data_key, row.user_id)
            row.key_id = new_master.key_id
        self._session.flush()
        return len(rows)


def default_key_file(url: str) -> Path | None:
    """Where the master key file is by default: next to a SQLite database file, else
    `data/master.key` under the working directory (the bot's data folder); None for an
    in-memory database (its key lives as long as it does)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return Path("data") / "master.key"
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).parent / "master.key"


def keyring_from_environment(url: str) -> Keyring:
    """The master key as a process without the bot's settings finds it (`Store.open`'s
    default, the migrations): `MASTER_KEY`, else the file `MASTER_KEY_FILE`, else
    `default_key_file(url)`, created on first run; a fresh key for an in-memory database."""
    if os.environ.get("MASTER_KEY", "").strip():
        return Keyring(MasterKey.from_base64(os.environ["MASTER_KEY"]))
    named = os.environ.get("MASTER_KEY_FILE", "").strip()
    path = Path(named) if named else default_key_file(url)
    return Keyring(MasterKey.generate() if path is None else MasterKey.from_file(path))
