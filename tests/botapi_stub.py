"""An in-process stand-in for the Telegram Bot API, for end-to-end tests of nightlegs.

Why
---
End-to-end tests run the *real* python-telegram-bot ``Application`` (HTTP client, Updater,
handlers, error handling, retries) against this server instead of ``api.telegram.org``.
The server listens on ``127.0.0.1`` on a free port inside the test's event loop, speaks
Telegram's wire protocol (URL shapes, form/multipart/JSON bodies, ``{"ok": ..., "result": ...}``
envelopes, HTTP status codes, long polling) and keeps a model of every chat, so a test can
type as a user, press inline buttons and read "the chat screen" the bot produced.

Quick start
-----------
.. code-block:: python

    async with BotApiStub() as api:
        app = (
            ApplicationBuilder()
            .token(api.token)
            .base_url(api.base_url)            # f"{api.root}/bot"
            .base_file_url(api.base_file_url)  # f"{api.root}/file/bot"
            .build()
        )
        app.add_handler(CommandHandler("start", start))
        await app.initialize()
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            mark = api.mark()
            api.feed_message(42, "/start")
            reply = await api.wait_for_message(42, after=mark)
            assert "Hello" in reply.plain_text
            await api.press(42, "Yes")          # feeds a callback_query for that button
            await api.wait_for_call("answerCallbackQuery", after=mark)
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()
        api.assert_no_violations()

What it models
--------------
* URLs ``{root}/bot{token}/{method}`` (GET or POST; JSON, urlencoded or multipart bodies) and
  ``{root}/file/bot{token}/{file_path}`` (downloads of files known to the stub).
  Any well-formed token is accepted and recorded (``Call.token``); a malformed one gets
  ``404 Not Found`` and a token not in ``accepted_tokens`` (or revoked with
  :meth:`BotApiStub.revoke_token`) gets ``401 Unauthorized``, as Telegram does.
* Methods: getMe, getUpdates (real long polling), setWebhook, deleteWebhook, getWebhookInfo,
  setMyCommands, getMyCommands, deleteMyCommands, sendMessage, editMessageText,
  editMessageCaption, editMessageReplyMarkup, answerCallbackQuery, sendDocument, sendPhoto,
  sendChatAction, deleteMessage, getFile, close, logOut. Anything else answers
  ``404 "Not Found: method not found"``.
* Updates: ``feed_*`` methods queue updates with increasing ``update_id``. getUpdates returns
  the unconfirmed ones; an ``offset`` confirms (forgets) every update with a smaller id, just
  like Telegram, so updates survive an app crash and are redelivered until confirmed.
  A second concurrent getUpdates terminates the first with ``409 Conflict``.
* Chats: every message the bot sends or edits is stored per chat, see :meth:`messages`.
  Message ids are numbered as Telegram numbers them for a bot: private chats and basic groups
  share *one* counter per bot (the person's messages and the bot's take ids from it, so ids in
  one chat jump by whatever other chats exchanged meanwhile); supergroups and channels count
  their own (MTProto's message identifiers: per account, except in channels and supergroups).
* Latency: ``latency=(low, high)`` answers every call a uniformly random ``low``-``high``
  seconds after applying it, as Telegram answers a bot that is not next door. A client that
  goes away meanwhile never hears the answer (``status=499``), though the call was applied.
  ``parse_mode`` HTML, MarkdownV2 and Markdown are parsed the way Telegram does (entities are
  produced, malformed markup answers ``400 can't parse entities``).
* Limits: too long texts/captions, empty texts, bad ``callback_data`` (> 64 bytes), answering
  an unknown or already answered callback query, "message is not modified" edits, invalid
  commands, ... are answered with Telegram's ``400 Bad Request`` *and* appended to
  :attr:`BotApiStub.violations`. Every 400 the stub produces by itself counts as a violation.
* Faults: :meth:`fail_next`, :meth:`rate_limit_next` (HTTP 429 with ``retry_after``),
  :meth:`block_user` (403 ``Forbidden: bot was blocked by the user``) and :meth:`outage`
  (every call answered with an error status, or not answered at all, for a while; nothing
  is applied meanwhile).
* Holds: :meth:`hold_next` keeps the next matching request waiting, neither applied nor
  answered, until :meth:`Hold.release` (then it is handled as usual) or until the client goes
  away (a killed bot: the call is recorded with ``status=499`` and never applied). A test can so
  stop the bot between "committed and queued" and "delivered", deterministically. With
  ``after_applying=True`` the request is applied first and only its answer is held: the bot
  never learns that Telegram did it.
* State lives in the :class:`BotApiStub` object, not in a connection: several Applications can
  connect one after another (stop or kill one, start the next). The server itself can also be
  stopped and started again on the same port to simulate a Telegram outage.

Not modelled: webhooks delivery, inline mode, payments, media groups, ``allowed_updates``
filtering (the value is recorded in :attr:`BotApiStub.allowed_updates` only), flood limits
(only injected ones).

Waiting
-------
All ``wait_*`` helpers are coroutines that wake on every state change (no fixed sleeps) and
raise :class:`TimeoutError` naming what they waited for after ``timeout`` seconds (default
:data:`DEFAULT_TIMEOUT`). Use :meth:`BotApiStub.mark` before an action and pass it as
``after=`` so that only calls made after the action are considered.

Note for PTB 22: constructing ``telegram.error.RetryAfter`` emits a ``PTBDeprecationWarning``
unless the environment variable ``PTB_TIMEDELTA=true`` is set; with ``filterwarnings = error``
tests that exercise 429s should set it (then ``retry_after`` is a ``timedelta``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import random
import re
import time
import traceback
from collections import deque
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from aiohttp import web

__all__ = [
    "BOT_FIRST_NAME",
    "BOT_USERNAME",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOKEN",
    "BotApiStub",
    "Call",
    "ChatType",
    "Hold",
    "SentMessage",
    "StoredFile",
    "UploadedFile",
]

DEFAULT_TOKEN = "123456789:AAHnightlegs-test-token_0123456789abcd"
BOT_USERNAME = "nightlegs_test_bot"
BOT_FIRST_NAME = "Nightlegs (test)"
DEFAULT_TIMEOUT = 10.0
DEFAULT_GROUP_USER_ID = 100_001

MAX_MESSAGE_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER_LENGTH = 200
MAX_UPLOAD_BYTES = 50 * 1024 * 1024

ChatType = Literal["private", "group", "supergroup", "channel"]
JSONDict = dict[str, Any]
_T = TypeVar("_T")

_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_METHOD_PATH_RE = re.compile(r"^/bot(?P<token>[^/]*)/(?P<method>[^/]+)/?$")
_FILE_PATH_RE = re.compile(r"^/file/bot(?P<token>[^/]*)/(?P<path>.+)$")
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")

#: Parameters whose (form-encoded) value is a plain string even if it looks like JSON.
_STRING_PARAMS = frozenset(
    [
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "url",
        "action",
        "language_code",
        "inline_message_id",
        "business_connection_id",
        "message_effect_id",
        "secret_token",
        "ip_address",
        "file_id",
        "emoji",
        "title",
        "description",
        "short_description",
        "name",
        "custom_emoji_id",
        "document",
        "photo",
        "thumbnail",
    ]
)
#: Parameters that carry JSON objects/arrays even inside a JSON body (some clients double-encode).
_OBJECT_PARAMS = frozenset(
    [
        "reply_markup",
        "entities",
        "caption_entities",
        "commands",
        "scope",
        "link_preview_options",
        "reply_parameters",
        "allowed_updates",
    ]
)
_CHAT_ACTIONS = frozenset(
    [
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    ]
)
_INLINE_BUTTON_ACTIONS = frozenset(
    [
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    ]
)
_MESSAGE_METHODS = frozenset(
    [
        "sendMessage",
        "sendDocument",
        "sendPhoto",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
    ]
)
_ERR_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
_ERR_QUERY_INVALID = (
    "Bad Request: query is too old and response timeout expired or query ID is invalid"
)
_ERR_CONFLICT_POLL = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)


# --------------------------------------------------------------------------------------------
# Records handed to tests
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request (e.g. the ``document`` of sendDocument)."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(eq=False)
class Call:
    """One HTTP request to ``/bot{token}/{method}``, in arrival order.

    ``params`` holds the decoded parameters (JSON values decoded, files as
    :class:`UploadedFile`). ``status``/``response`` are filled once answered; for every method
    except a waiting getUpdates that happens atomically with recording. A request abandoned by
    the client while waiting is marked ``status=499``.
    """

    method: str
    params: JSONDict
    token: str
    at: float  #: ``time.monotonic()`` at arrival
    index: int = -1  #: position in :attr:`BotApiStub.calls`
    http_method: str = "POST"
    files: dict[str, UploadedFile] = field(default_factory=dict)
    status: int | None = None
    response: JSONDict | None = None
    held: bool = False  #: kept waiting by a :class:`Hold` before being handled
    #: The answer once the call is applied, before it is sent back (see ``latency``).
    applied: JSONDict | None = None

    @property
    def ok(self) -> bool:
        """True if the call was answered with ``{"ok": true}``."""
        return self.status == 200

    @property
    def result(self) -> Any:
        """The ``result`` of a successful call (raises if the call failed)."""
        if not self.ok or self.response is None:
            raise ValueError(f"{self.method} call #{self.index} did not succeed: {self.response}")
        return self.response["result"]

    @property
    def description(self) -> str | None:
        """Telegram's error description, if the call failed."""
        return None if self.response is None else self.response.get("description")


@dataclass(eq=False)
class SentMessage:
    """A message as currently shown in a chat (edits are applied in place).

    ``text`` is the text exactly as the bot sent it (before ``parse_mode``), ``plain_text`` what
    the user sees (text or caption after entity parsing). ``raw`` is the Telegram ``Message``
    dict the stub returns for it.
    """

    chat_id: int
    message_id: int
    kind: str  #: "text", "document", "photo", "sticker", "voice", "other"
    from_bot: bool
    date: int
    raw: JSONDict
    text: str | None = None
    caption: str | None = None
    parse_mode: str | None = None
    reply_markup: JSONDict | None = None
    plain_text: str | None = None
    entities: list[JSONDict] = field(default_factory=list)
    file: UploadedFile | None = None
    edit_date: int | None = None
    #: previous versions as (text or caption, reply_markup), oldest first
    history: list[tuple[str | None, JSONDict | None]] = field(default_factory=list)

    @property
    def buttons(self) -> list[tuple[str, str | None]]:
        """Flattened ``(text, callback_data)`` of the keyboard (None for non-callback buttons)."""
        return BotApiStub.buttons(self)

    @property
    def has_inline_keyboard(self) -> bool:
        """Whether the message currently carries a non-empty inline keyboard."""
        return bool(self.reply_markup and self.reply_markup.get("inline_keyboard"))


@dataclass
class StoredFile:
    """A file the stub can serve via getFile and the file download URL."""

    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    file_name: str | None = None
    mime_type: str | None = None


@dataclass(eq=False)
class Hold:
    """A request kept waiting, unapplied, by :meth:`BotApiStub.hold_next`.

    ``call`` is the held request once it arrived. :meth:`release` lets it through (it is then
    handled as usual); if the client goes away first (a killed bot), it is recorded with
    ``status=499`` and never applied. With ``after_applying`` the request is applied at once
    and only the answer waits (a client that goes away then never gets it: ``status=499``,
    though the effect stays).
    """

    methods: frozenset[str]  #: lower-cased method names
    chat_id: int | None
    after_applying: bool = False  #: apply the request, hold only its answer
    call: Call | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def arrived(self) -> bool:
        return self.call is not None

    def matches(self, method: str, params: JSONDict) -> bool:
        if method.lower() not in self.methods:
            return False
        return self.chat_id is None or str(params.get("chat_id")) == str(self.chat_id)

    def release(self) -> None:
        """Let the held request (or, if none arrived yet, the next one) through."""
        self.released.set()


@dataclass
class _Fault:
    status: int
    description: str
    parameters: JSONDict | None = None


class _ApiError(Exception):
    """Raised by method handlers; turned into Telegram's error envelope."""

    def __init__(
        self,
        status: int,
        description: str,
        *,
        parameters: JSONDict | None = None,
        injected: bool = False,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters
        self.injected = injected


def _bad_request(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


# --------------------------------------------------------------------------------------------
# Text helpers: UTF-16 lengths and Telegram's parse modes
# --------------------------------------------------------------------------------------------


def _u16(text: str) -> int:
    """Length in UTF-16 code units, the unit Telegram uses for entity offsets."""
    return len(text.encode("utf-16-le")) // 2


class _Plain:
    """Accumulates parsed plain text while tracking the UTF-16 position."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.pos += _u16(text)

    def text(self) -> str:
        return "".join(self.parts)


def _entity(kind: str, offset: int, length: int, **extra: Any) -> JSONDict | None:
    if length <= 0:
        return None  # Telegram silently drops empty entities
    return {"type": kind, "offset": offset, "length": length, **extra}


def _parse_error(message: str) -> _ApiError:
    return _bad_request(f"can't parse entities: {message}")


_HTML_TAG_RE = re.compile(
    r"""<(/?)([a-zA-Z][a-zA-Z0-9-]*)"""
    r"""((?:\s+[a-zA-Z][a-zA-Z0-9-]*(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'>]+))?)*)\s*>"""
)
_HTML_ATTR_RE = re.compile(r"""([a-zA-Z][a-zA-Z0-9-]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?""")
_HTML_ENTITY_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|lt|gt|amp|quot);")
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}


class _HtmlParser:
    """Telegram's HTML subset -> (plain text, entities), with Telegram-like error messages."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.plain = _Plain()
        self.entities: list[JSONDict] = []
        self.stack: list[tuple[str, int, dict[str, str]]] = []  # (tag, start, attributes)

    def parse(self) -> tuple[str, list[JSONDict]]:
        i = 0
        while i < len(self.text):
            char = self.text[i]
            if char == "<":
                i = self._tag(i)
            elif char == "&" and (match := _HTML_ENTITY_RE.match(self.text, i)) is not None:
                self.plain.add(self._decode_entity(match.group(1)))
                i = match.end()
            else:
                self.plain.add(char)
                i += 1
        if self.stack:
            raise _parse_error(
                f'Can\'t find end tag corresponding to start tag "{self.stack[-1][0]}"'
            )
        return self.plain.text(), self.entities

    @staticmethod
    def _decode_entity(ref: str) -> str:
        if ref in _HTML_NAMED:
            return _HTML_NAMED[ref]
        code = int(ref[2:], 16) if ref[1:2] in "xX" else int(ref[1:])
        if not 0 < code <= 0x10FFFF:
            raise _parse_error(f"Invalid HTML entity &{ref};")
        return chr(code)

    def _tag(self, i: int) -> int:
        offset = len(self.text[:i].encode())
        match = _HTML_TAG_RE.match(self.text, i)
        if match is None:
            raise _parse_error(f"Unsupported start tag at byte offset {offset}")
        name = match.group(2).lower()
        if name not in _HTML_TAGS:
            raise _parse_error(f'Unsupported start tag "{name}" at byte offset {offset}')
        if match.group(1) == "/":
            self._close(name, offset)
        else:
            self._open(name, match.group(3), offset)
        return match.end()

    def _open(self, name: str, attr_source: str, offset: int) -> None:
        attrs = {
            key.lower(): value.strip("\"'") for key, value in _HTML_ATTR_RE.findall(attr_source)
        }
        required = {
            "span": ("class", "tg-spoiler"),
            "a": ("href", None),
            "tg-emoji": ("emoji-id", None),
        }.get(name)
        if required is not None:
            attr, expected = required
            if not attrs.get(attr) or (expected is not None and attrs[attr] != expected):
                wanted = f'{attr}="{expected}"' if expected else f'attribute "{attr}"'
                raise _parse_error(f'Tag "{name}" must have {wanted} at byte offset {offset}')
        self.stack.append((name, self.plain.pos, attrs))

    def _close(self, name: str, offset: int) -> None:
        if not self.stack:
            raise _parse_error(f'Unexpected end tag "{name}" at byte offset {offset}')
        tag, start, attrs = self.stack.pop()
        if tag != name:
            raise _parse_error(
                f'Unmatched end tag at byte offset {offset}, expected "</{tag}>", found "</{name}>"'
            )
        if tag == "code" and self.stack and self.stack[-1][0] == "pre":
            # <pre><code class="language-x"> is a single pre entity with a language
            css_class = attrs.get("class", "")
            if css_class.startswith("language-"):
                self.stack[-1][2]["language"] = css_class.removeprefix("language-")
            return
        kind = _HTML_TAGS[tag]
        extra: dict[str, Any] = {}
        if tag == "a":
            extra["url"] = attrs["href"]
        elif tag == "tg-emoji":
            extra["custom_emoji_id"] = attrs["emoji-id"]
        elif tag == "pre" and "language" in attrs:
            extra["language"] = attrs["language"]
        elif tag == "blockquote" and "expandable" in attrs:
            kind = "expandable_blockquote"
        if (ent := _entity(kind, start, self.plain.pos - start, **extra)) is not None:
            self.entities.append(ent)


_MD2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MD2_MARKERS = (
    ("__", "underline"),
    ("||", "spoiler"),
    ("*", "bold"),
    ("_", "italic"),
    ("~", "strikethrough"),
)
_MD1_MARKERS = (("*", "bold"), ("_", "italic"))


class _MarkdownParser:
    """Telegram's MarkdownV2 (``v2=True``) or legacy Markdown -> (plain text, entities)."""

    def __init__(self, text: str, *, v2: bool) -> None:
        self.text = text
        self.v2 = v2
        self.plain = _Plain()
        self.entities: list[JSONDict] = []
        self.open_marks: dict[str, tuple[str, int, int]] = {}  # marker -> (type, start, byte)
        self.links: list[tuple[int, bool, int]] = []  # (start, is_custom_emoji, byte offset)
        self.quote: tuple[int, bool] | None = None  # (start, expandable)
        self.markers = _MD2_MARKERS if v2 else _MD1_MARKERS

    def parse(self) -> tuple[str, list[JSONDict]]:
        steps = (
            self._escape,
            self._pre,
            self._code,
            self._link_open,
            self._link_close,
            self._expandable_end,
            self._marker,
        )
        i, line_start = 0, True
        while i < len(self.text):
            if line_start and self.v2:
                i = self._quote_prefix(i)
                if i >= len(self.text):
                    break
            line_start = False
            for step in steps:
                if (end := step(i)) is not None:
                    i = end
                    break
            else:
                char = self.text[i]
                if self.v2 and char in _MD2_RESERVED:
                    raise _parse_error(
                        f"Character '{char}' is reserved and must be escaped with the "
                        "preceding '\\'"
                    )
                self.plain.add(char)
                i += 1
                if char == "\n":
                    line_start = True
                    self._maybe_end_quote(i)
        self._finish()
        return self.plain.text(), self.entities

    def _add(self, kind: str, start: int, **extra: Any) -> None:
        if (ent := _entity(kind, start, self.plain.pos - start, **extra)) is not None:
            self.entities.append(ent)

    def _byte_offset(self, index: int) -> int:
        return len(self.text[:index].encode())

    def _find_end(self, token: str, start: int) -> int:
        if not self.v2:
            return self.text.find(token, start)
        j = start
        while j < len(self.text):
            if self.text[j] == "\\":
                j += 2
            elif self.text.startswith(token, j):
                return j
            else:
                j += 1
        return -1

    def _quote_prefix(self, i: int) -> int:
        expandable = self.text.startswith("**>", i)
        if not expandable and not self.text.startswith(">", i):
            return i
        if self.quote is None:
            self.quote = (self.plain.pos, expandable)
        return i + (3 if expandable else 1)

    def _maybe_end_quote(self, i: int) -> None:
        if self.quote is not None and not self.quote[1] and not self.text.startswith(">", i):
            start = self.quote[0]
            self.quote = None
            self.entities.append(
                {"type": "blockquote", "offset": start, "length": self.plain.pos - 1 - start}
            )

    def _escape(self, i: int) -> int | None:
        if self.text[i] != "\\" or i + 1 >= len(self.text):
            return None
        if not self.v2 and self.text[i + 1] not in "_*`[":
            return None
        self.plain.add(self.text[i + 1])
        return i + 2

    def _unescape_code(self, body: str) -> str:
        return re.sub(r"\\([\\`])", r"\1", body) if self.v2 else body

    def _pre(self, i: int) -> int | None:
        if not self.text.startswith("```", i):
            return None
        end = self._find_end("```", i + 3)
        if end < 0:
            raise _parse_error(
                f"Can't find end of Pre entity at byte offset {self._byte_offset(i)}"
            )
        body = self.text[i + 3 : end]
        language = None
        first, newline, rest = body.partition("\n")
        if newline and first and not any(c.isspace() for c in first):
            language, body = first, rest
        start = self.plain.pos
        self.plain.add(self._unescape_code(body))
        self._add("pre", start, **({"language": language} if language else {}))
        return end + 3

    def _code(self, i: int) -> int | None:
        if self.text[i] != "`":
            return None
        end = self._find_end("`", i + 1)
        if end < 0:
            raise _parse_error(
                f"Can't find end of Code entity at byte offset {self._byte_offset(i)}"
            )
        start = self.plain.pos
        self.plain.add(self._unescape_code(self.text[i + 1 : end]))
        self._add("code", start)
        return end + 1

    def _link_open(self, i: int) -> int | None:
        if self.text[i] == "[":
            self.links.append((self.plain.pos, False, self._byte_offset(i)))
            return i + 1
        if self.v2 and self.text.startswith("![", i):
            self.links.append((self.plain.pos, True, self._byte_offset(i)))
            return i + 2
        return None

    def _link_close(self, i: int) -> int | None:
        if self.text[i] != "]" or not self.links:
            return None
        end = self._find_end(")", i + 2) if self.text.startswith("(", i + 1) else -1
        if end < 0:
            raise _parse_error(f"Can't find end of a URL at byte offset {self._byte_offset(i)}")
        url = self.text[i + 2 : end]
        if self.v2:
            url = re.sub(r"\\([\\)])", r"\1", url)
        start, is_emoji, _ = self.links.pop()
        if is_emoji:
            self._add("custom_emoji", start, custom_emoji_id=url.partition("id=")[2])
        else:
            self._add("text_link", start, url=url)
        return end + 1

    def _expandable_end(self, i: int) -> int | None:
        if (
            self.quote is None
            or not self.quote[1]
            or not self.text.startswith("||", i)
            or not (i + 2 == len(self.text) or self.text[i + 2] == "\n")
        ):
            return None
        self._add("expandable_blockquote", self.quote[0])
        self.quote = None
        return i + 2

    def _marker(self, i: int) -> int | None:
        found = next(((m, k) for m, k in self.markers if self.text.startswith(m, i)), None)
        if found is None:
            return None
        mark, kind = found
        if mark in self.open_marks:
            _, start, _ = self.open_marks.pop(mark)
            self._add(kind, start)
        else:
            self.open_marks[mark] = (kind, self.plain.pos, self._byte_offset(i))
        return i + len(mark)

    def _finish(self) -> None:
        if self.quote is not None:
            self._add("expandable_blockquote" if self.quote[1] else "blockquote", self.quote[0])
        if self.open_marks:
            kind, _, offset = min(self.open_marks.values(), key=lambda item: item[2])
            name = kind.replace("_", " ").title().replace(" ", "")
            raise _parse_error(f"Can't find end of {name} entity at byte offset {offset}")
        if self.links:
            raise _parse_error(
                f"Can't find end of TextUrl entity at byte offset {self.links[0][2]}"
            )


def _render(text: str, parse_mode: str | None, entities: Any) -> tuple[str, list[JSONDict]]:
    """Apply ``parse_mode``/``entities`` like Telegram: returns (plain text, entities)."""
    if entities is not None:
        if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
            raise _bad_request("can't parse entities JSON object")
        return text, [dict(e) for e in entities]
    mode = (parse_mode or "").lower()
    if not mode:
        return text, []
    if mode == "html":
        plain, ents = _HtmlParser(text).parse()
    elif mode == "markdownv2":
        plain, ents = _MarkdownParser(text, v2=True).parse()
    elif mode == "markdown":
        plain, ents = _MarkdownParser(text, v2=False).parse()
    else:
        raise _bad_request(f"unsupported parse_mode {parse_mode!r}")
    ents.sort(key=lambda e: (e["offset"], -e["length"]))
    return plain, ents


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------

_Handler = Callable[[Call], Coroutine[Any, Any, Any]]


class BotApiStub:
    """A fake Telegram Bot API server bound to ``127.0.0.1``; see the module docstring.

    Args:
        accepted_tokens: If given, only these tokens are accepted (others: 401 Unauthorized).
            By default every well-formed token (``<digits>:<chars>``) is accepted.
        default_timeout: Deadline in seconds of the ``wait_*`` helpers.
        first_update_id: ``update_id`` of the first fed update.
        latency: ``(low, high)`` seconds: each answer waits a uniformly random time in that
            range after the call is applied (None: answer at once).
        seed: seeds the latency's random choices.
        first_message_id: the bot's first message id (Telegram's counter is far along).
    """

    def __init__(
        self,
        *,
        accepted_tokens: Collection[str] | None = None,
        default_timeout: float = DEFAULT_TIMEOUT,
        first_update_id: int = 1,
        latency: tuple[float, float] | None = None,
        seed: int | None = None,
        first_message_id: int = 1,
    ) -> None:
        if latency is not None and not 0 <= latency[0] <= latency[1]:
            raise ValueError(f"latency must be (low, high) with 0 <= low <= high: {latency}")
        self.default_timeout = default_timeout
        self.latency = latency
        self._random = random.Random(seed)
        self.accepted_tokens: set[str] | None = (
            None if accepted_tokens is None else set(accepted_tokens)
        )
        self.revoked_tokens: set[str] = set()
        #: Every request, in arrival order (see :class:`Call`).
        self.calls: list[Call] = []
        #: Human-readable descriptions of every Telegram rule the bot broke (each got a 400).
        self.violations: list[str] = []
        #: Every update ever fed, in order.
        self.updates: list[JSONDict] = []
        #: Chats the bot can no longer write to (403 "bot was blocked by the user").
        self.blocked: set[int] = set()
        #: Last ``allowed_updates`` passed to getUpdates/setWebhook (recorded only).
        self.allowed_updates: list[str] | None = None
        self.webhook_url = ""
        self.webhook_attempts: list[tuple[int, str, int | None]] = []
        #: Answers given to callback queries: callback id -> answerCallbackQuery params.
        self.callback_answers: dict[str, JSONDict] = {}
        self.files: dict[str, StoredFile] = {}
        self.deleted_messages: list[SentMessage] = []
        #: Tracebacks of unexpected exceptions inside the stub (answered with 500).
        self.internal_errors: list[str] = []
        self.logged_out = False

        self._confirmed_offset = 0
        self._next_update_id = first_update_id
        self._chats: dict[int, JSONDict] = {}
        self._messages: dict[int, dict[int, SentMessage]] = {}
        #: The bot's one counter for private chats and basic groups (the next id it hands out).
        self._next_shared_id = first_message_id
        #: Supergroups' and channels' own counters.
        self._next_message_id: dict[int, int] = {}
        self._callbacks: dict[str, SentMessage | None] = {}
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._faults: dict[str, deque[_Fault]] = {}
        #: Holds waiting for their request (see :meth:`hold_next`), oldest first.
        self._holds: list[Hold] = []
        #: Outage phases (status or None for no answer, monotonic end), see :meth:`outage`.
        self._outage: list[tuple[int | None, float]] = []
        self._ids = itertools.count(1)
        self._poll_generation = 0
        self._changed = asyncio.Event()
        self._stopping = False
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        handlers: dict[str, _Handler] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "answerCallbackQuery": self._answer_callback_query,
            "sendDocument": self._send_document,
            "sendPhoto": self._send_photo,
            "sendChatAction": self._send_chat_action,
            "deleteMessage": self._delete_message,
            "getFile": self._get_file,
            "close": self._close,
            "logOut": self._log_out,
        }
        # Telegram method names are case-insensitive; calls are recorded with the usual spelling.
        self._handlers = {name.lower(): handler for name, handler in handlers.items()}
        self._method_names = {name.lower(): name for name in handlers}

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> Self:
        """Start listening (on the previous port if the stub was started before)."""
        if self._runner is not None:
            raise RuntimeError("BotApiStub is already running")
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES + 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", self._port or 0)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = int(runner.addresses[0][1])
        self._runner = runner
        self._stopping = False
        return self

    async def stop(self) -> None:
        """Answer waiting long polls with ``[]`` and close the server. State is kept."""
        if self._runner is None:
            return
        self._stopping = True
        self._notify()
        await asyncio.sleep(0)  # let woken getUpdates handlers write their answers
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("BotApiStub was never started")
        return self._port

    @property
    def root(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """Value for ``ApplicationBuilder.base_url`` / ``Bot(base_url=...)``."""
        return f"{self.root}/bot"

    @property
    def base_file_url(self) -> str:
        """Value for ``ApplicationBuilder.base_file_url`` / ``Bot(base_file_url=...)``."""
        return f"{self.root}/file/bot"

    @property
    def token(self) -> str:
        """A token the stub accepts (the first accepted token, else :data:`DEFAULT_TOKEN`)."""
        if self.accepted_tokens:
            return sorted(self.accepted_tokens)[0]
        return DEFAULT_TOKEN

    @property
    def tokens(self) -> list[str]:
        """Distinct tokens seen so far, in order of first use."""
        return list(dict.fromkeys(call.token for call in self.calls))

    def revoke_token(self, token: str) -> None:
        """From now on answer requests with ``token`` with 401 Unauthorized."""
        self.revoked_tokens.add(token)

    # ---------------------------------------------------------------- feeding updates

    def feed_raw(self, update: JSONDict) -> JSONDict:
        """Queue an arbitrary update dict (``update_id`` is assigned if missing)."""
        update = copy.deepcopy(update)
        update_id = update.get("update_id")
        if update_id is None:
            update_id = self._next_update_id
        elif update_id < self._next_update_id:
            raise ValueError(
                f"update_id {update_id} must be >= {self._next_update_id} (ids only increase)"
            )
        update = {"update_id": update_id, **{k: v for k, v in update.items() if k != "update_id"}}
        self._next_update_id = update_id + 1
        if (query := update.get("callback_query")) is not None and "id" in query:
            self._callbacks.setdefault(str(query["id"]), None)
        self.updates.append(update)
        self._notify()
        return copy.deepcopy(update)

    def feed_message(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int | None = None,
        chat_type: ChatType = "private",
        language_code: str | None = "en",
        first_name: str = "Test",
        entities: list[JSONDict] | None = None,
    ) -> JSONDict:
        """A user (or, for ``chat_type="channel"``, the channel) writes ``text``.

        ``entities`` defaults to a ``bot_command`` entity when ``text`` starts with "/"
        (pass ``[]`` for none).
        """
        if entities is None:
            entities = []
            if text.startswith("/") and text.split():
                command = text.split(maxsplit=1)[0]
                entities = [{"type": "bot_command", "offset": 0, "length": _u16(command)}]
        content: JSONDict = {"text": text}
        if entities:
            content["entities"] = entities
        return self._feed_user_message(
            chat_id,
            content,
            "text",
            user_id=user_id,
            chat_type=chat_type,
            language_code=language_code,
            first_name=first_name,
        )

    def feed_edited_message(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        entities: list[JSONDict] | None = None,
    ) -> JSONDict:
        """The author edits a message previously fed with :meth:`feed_message`."""
        message = self._find_message(chat_id, message_id)
        if message is None or message.from_bot:
            raise LookupError(f"no user message {message_id} in chat {chat_id}")
        message.history.append((message.text, message.reply_markup))
        message.text = message.plain_text = text
        message.edit_date = int(time.time())
        message.raw["text"] = text
        message.raw["edit_date"] = message.edit_date
        message.raw.pop("entities", None)
        if entities:
            message.raw["entities"] = entities
        is_channel = message.raw["chat"]["type"] == "channel"
        key = "edited_channel_post" if is_channel else "edited_message"
        return self.feed_raw({key: copy.deepcopy(message.raw)})

    def feed_sticker(
        self,
        chat_id: int,
        *,
        emoji: str = "👍",
        user_id: int | None = None,
        chat_type: ChatType = "private",
        language_code: str | None = "en",
        first_name: str = "Test",
    ) -> JSONDict:
        """The user sends a (static, regular) sticker."""
        stored = self._store_file(b"RIFF\x00\x00\x00\x00WEBPVP8 ", "stickers", "file.webp", None)
        sticker = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "file_size": len(stored.data),
        }
        return self._feed_user_message(
            chat_id,
            {"sticker": sticker},
            "sticker",
            user_id=user_id,
            chat_type=chat_type,
            language_code=language_code,
            first_name=first_name,
        )

    def feed_photo(
        self,
        chat_id: int,
        *,
        caption: str | None = None,
        content: bytes = b"\xff\xd8\xff\xe0 fake jpeg \xff\xd9",
        user_id: int | None = None,
        chat_type: ChatType = "private",
        language_code: str | None = "en",
        first_name: str = "Test",
    ) -> JSONDict:
        """The user sends a photo (``content`` is served by getFile + download)."""
        content_dict: JSONDict = {"photo": self._photo_sizes(content)}
        if caption is not None:
            content_dict["caption"] = caption
        return self._feed_user_message(
            chat_id,
            content_dict,
            "photo",
            user_id=user_id,
            chat_type=chat_type,
            language_code=language_code,
            first_name=first_name,
        )

    def feed_voice(
        self,
        chat_id: int,
        *,
        duration: int = 3,
        content: bytes = b"OggS fake voice",
        user_id: int | None = None,
        chat_type: ChatType = "private",
        language_code: str | None = "en",
        first_name: str = "Test",
    ) -> JSONDict:
        """The user sends a voice message."""
        stored = self._store_file(content, "voice", "file.oga", "audio/ogg")
        voice = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": len(content),
        }
        return self._feed_user_message(
            chat_id,
            {"voice": voice},
            "voice",
            user_id=user_id,
            chat_type=chat_type,
            language_code=language_code,
            first_name=first_name,
        )

    def feed_callback(
        self,
        chat_id: int,
        message_id: int,
        data: str,
        *,
        user_id: int | None = None,
        first_name: str = "Test",
        language_code: str | None = "en",
    ) -> JSONDict:
        """The user presses an inline button with ``data`` under bot message ``message_id``."""
        message = self._find_message(chat_id, message_id)
        if message is None or not message.from_bot:
            raise LookupError(
                f"no bot message {message_id} in chat {chat_id}; "
                f"known: {[m.message_id for m in self.messages(chat_id)]}"
            )
        chat = self._chat(chat_id)
        user = self._user(
            self._default_user_id(chat_id, chat["type"], user_id), first_name, language_code
        )
        query_id = str(4_000_000_000_000_000 + next(self._ids))
        self._callbacks[query_id] = message
        return self.feed_raw(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user,
                    "message": copy.deepcopy(message.raw),
                    "chat_instance": str(-abs(chat_id) * 7 - 4_242_424_242),
                    "data": data,
                }
            }
        )

    async def press(
        self,
        chat_id: int,
        button_text: str,
        *,
        message: SentMessage | int | None = None,
        user_id: int | None = None,
    ) -> JSONDict:
        """Press the inline button labelled ``button_text``; returns the fed update.

        Uses the latest message of the chat that has an inline keyboard, or ``message``
        (a :class:`SentMessage` or a message id).
        """
        if message is None:
            target = next(
                (m for m in reversed(self.messages(chat_id)) if m.has_inline_keyboard), None
            )
            if target is None:
                raise LookupError(
                    f"chat {chat_id} has no message with an inline keyboard\n"
                    f"{self.transcript(chat_id)}"
                )
        elif isinstance(message, int):
            found = self._find_message(chat_id, message)
            if found is None:
                raise LookupError(f"no message {message} in chat {chat_id}")
            target = found
        else:
            target = message
        for text, data in self.buttons(target):
            if text == button_text:
                if data is None:
                    raise ValueError(f"button {button_text!r} has no callback_data")
                return self.feed_callback(chat_id, target.message_id, data, user_id=user_id)
        raise LookupError(
            f"no button {button_text!r} on message {target.message_id} in chat {chat_id}; "
            f"buttons: {[text for text, _ in self.buttons(target)]}"
        )

    def pending_updates(self) -> list[JSONDict]:
        """Updates fed but not yet confirmed by a getUpdates ``offset``."""
        return [copy.deepcopy(u) for u in self.updates if u["update_id"] >= self._confirmed_offset]

    @property
    def confirmed_offset(self) -> int:
        """Highest ``offset`` seen: updates with a smaller id are confirmed (never resent)."""
        return self._confirmed_offset

    # ---------------------------------------------------------------- recording & waiting

    def mark(self) -> int:
        """The index the next call will get; pass it as ``after=`` to the ``wait_*`` helpers."""
        return len(self.calls)

    def calls_of(self, method: str) -> list[Call]:
        """All calls of ``method`` (case-insensitive), in order."""
        method = method.lower()
        return [call for call in self.calls if call.method.lower() == method]

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        *,
        after: int | None = None,
        timeout: float | None = None,
    ) -> Call:
        """Wait for a call of ``method`` (at index >= ``after``) matching ``predicate``.

        Failed calls match too (check :attr:`Call.ok`).
        """
        lowered = method.lower()
        start = after or 0

        def check() -> Call | None:
            for call in self.calls[start:]:
                if call.method.lower() == lowered and (predicate is None or predicate(call)):
                    return call
            return None

        what = f"a {method} call" + (" matching the predicate" if predicate else "")
        return await self._wait_until(
            check, what + (f" after call #{start}" if after else ""), timeout
        )

    async def wait_for_message(
        self,
        chat_id: int,
        predicate: Callable[[SentMessage], bool] | None = None,
        *,
        after: int | None = None,
        timeout: float | None = None,
    ) -> SentMessage:
        """Wait until the bot successfully sends or edits a message in ``chat_id``.

        Returns the message in its current state. ``predicate`` filters on that state. A call
        counts once applied (the person sees it), though its answer may still be on its way.
        """
        start = after or 0

        def check() -> SentMessage | None:
            for call in self.calls[start:]:
                if call.method not in _MESSAGE_METHODS or call.applied is None:
                    continue
                result = call.applied["result"]
                if not isinstance(result, dict) or result["chat"]["id"] != chat_id:
                    continue
                message = self._find_message(chat_id, result["message_id"])
                if message is not None and (predicate is None or predicate(message)):
                    return message
            return None

        return await self._wait_until(
            check,
            f"a bot message in chat {chat_id}" + (" matching the predicate" if predicate else ""),
            timeout,
        )

    async def wait_until_confirmed(
        self, update: int | JSONDict, *, timeout: float | None = None
    ) -> None:
        """Wait until getUpdates was called with an offset greater than the update's id."""
        update_id = update if isinstance(update, int) else int(update["update_id"])
        await self._wait_until(
            lambda: True if self._confirmed_offset > update_id else None,
            lambda: (
                f"update {update_id} to be confirmed (confirmed offset is {self._confirmed_offset})"
            ),
            timeout,
        )

    def assert_no_violations(self) -> None:
        """Raise AssertionError listing :attr:`violations` (and stub errors), if any."""
        if self.violations or self.internal_errors:
            raise AssertionError(
                "Bot API rules violated:\n  " + "\n  ".join(self.violations + self.internal_errors)
            )

    def unanswered_callbacks(self) -> list[str]:
        """Ids of fed callback queries the bot never answered."""
        return [qid for qid in self._callbacks if qid not in self.callback_answers]

    # ---------------------------------------------------------------- chat view

    def messages(self, chat_id: int, *, include_user: bool = False) -> list[SentMessage]:
        """The chat as it looks now: the bot's messages (and user ones if asked), oldest first."""
        return [m for m in self._messages.get(chat_id, {}).values() if m.from_bot or include_user]

    def last_message(self, chat_id: int, *, include_user: bool = False) -> SentMessage | None:
        """The newest message of the chat (bot messages only by default)."""
        messages = self.messages(chat_id, include_user=include_user)
        return messages[-1] if messages else None

    def message(self, chat_id: int, message_id: int) -> SentMessage:
        """A message by id (raises LookupError if unknown or deleted)."""
        found = self._find_message(chat_id, message_id)
        if found is None:
            raise LookupError(f"no message {message_id} in chat {chat_id}")
        return found

    @staticmethod
    def buttons(message: SentMessage | JSONDict | None) -> list[tuple[str, str | None]]:
        """Flatten a keyboard into ``(text, callback_data)`` pairs.

        Accepts a :class:`SentMessage` or a ``reply_markup`` dict; reply-keyboard buttons and
        non-callback inline buttons have ``None`` as data.
        """
        markup = message.reply_markup if isinstance(message, SentMessage) else message
        if not markup:
            return []
        rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
        result: list[tuple[str, str | None]] = []
        for row in rows:
            for button in row:
                if isinstance(button, str):
                    result.append((button, None))
                else:
                    result.append((str(button.get("text", "")), button.get("callback_data")))
        return result

    def transcript(self, chat_id: int) -> str:
        """A readable dump of the chat (user and bot messages), handy in assertion messages."""
        lines = []
        for m in self.messages(chat_id, include_user=True):
            who = "bot" if m.from_bot else "user"
            body = m.plain_text if m.plain_text is not None else f"<{m.kind}>"
            lines.append(f"#{m.message_id} {who}: {body}")
            if m.buttons:
                lines.append("    " + " | ".join(f"[{text}]" for text, _ in m.buttons))
        return "\n".join(lines) or "(empty chat)"

    def commands(
        self, scope: JSONDict | None = None, language_code: str = ""
    ) -> list[tuple[str, str]]:
        """The bot's command list for ``scope`` (default scope) and ``language_code``."""
        stored = self._commands.get(self._commands_key(scope, language_code), [])
        return [(c["command"], c["description"]) for c in stored]

    # ---------------------------------------------------------------- webhook delivery

    async def deliver_webhooks(
        self,
        targets: list[str],
        *,
        secret: str,
        stop: asyncio.Event,
        timeout: float = 30.0,
    ) -> None:
        """Push updates to webhook ``targets`` as Telegram does, until ``stop`` is set.

        Several targets stand for instances behind a load balancer: each update is posted to
        the next one in turn, with the ``X-Telegram-Bot-Api-Secret-Token`` header. A 200
        confirms it; anything else (an error status, a refused connection, an instance killed
        mid-request) sends it again to the next target, until one says 200. Updates of one chat
        go one at a time and in order; different chats are posted side by side. Every attempt
        is recorded in :attr:`webhook_attempts` as ``(update_id, target, status or None)``.
        """
        import aiohttp  # noqa: PLC0415 - only webhook tests need a client

        delivered: set[int] = set()
        turn = itertools.count()
        workers: dict[object, asyncio.Task[None]] = {}

        def chat_of(update: JSONDict) -> object:
            for key in ("message", "edited_message", "callback_query"):
                body = update.get(key)
                if body is None:
                    continue
                message = body.get("message", body) if key == "callback_query" else body
                chat = message.get("chat") if isinstance(message, dict) else None
                return chat["id"] if chat else body.get("from", {}).get("id")
            return None

        def undelivered() -> list[JSONDict]:
            return [u for u in self.pending_updates() if u["update_id"] not in delivered]

        async def post(http: aiohttp.ClientSession, update: JSONDict) -> None:
            while not stop.is_set():
                target = targets[next(turn) % len(targets)]
                status: int | None = None
                try:
                    async with http.post(
                        target,
                        json=update,
                        headers={"X-Telegram-Bot-Api-Secret-Token": secret},
                        timeout=aiohttp.ClientTimeout(total=timeout),
                    ) as response:
                        status = response.status
                except (aiohttp.ClientError, TimeoutError):
                    status = None
                self.webhook_attempts.append((update["update_id"], target, status))
                if status == 200:
                    return
                await asyncio.sleep(0.05)  # Telegram's back-off, shortened for tests

        async def chat_worker(http: aiohttp.ClientSession, chat: object) -> None:
            while not stop.is_set():
                mine = [u for u in undelivered() if chat_of(u) == chat]
                if not mine:
                    return
                await post(http, mine[0])
                delivered.add(mine[0]["update_id"])
                rest = undelivered()
                self._confirm(rest[0]["update_id"] if rest else self._next_update_id)

        async with aiohttp.ClientSession() as http:
            try:
                while not stop.is_set():
                    for update in undelivered():
                        chat = chat_of(update)
                        if chat not in workers or workers[chat].done():
                            workers[chat] = asyncio.create_task(chat_worker(http, chat))
                    await self._wait_changed(0.5)
            finally:
                for task in workers.values():
                    task.cancel()
                await asyncio.gather(*workers.values(), return_exceptions=True)

    # ---------------------------------------------------------------- fault injection

    def fail_next(
        self,
        method: str,
        *,
        status: int = 500,
        times: int = 1,
        description: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP ``status``."""
        if description is None:
            try:
                description = HTTPStatus(status).phrase
            except ValueError:
                description = "Injected failure"
        for _ in range(times):
            self._faults.setdefault(method.lower(), deque()).append(_Fault(status, description))

    def rate_limit_next(self, method: str, *, retry_after: int = 1, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with 429 Too Many Requests."""
        fault = _Fault(
            429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
        )
        for _ in range(times):
            self._faults.setdefault(method.lower(), deque()).append(fault)

    def clear_faults(self) -> None:
        """Drop all pending injected faults."""
        self._faults.clear()

    def outage(self, *phases: tuple[int | None, float]) -> None:
        """Telegram is away: each ``(status, seconds)`` phase, one after the other from now.

        During a phase with a status every call (of any method) is answered with it at once;
        with ``None`` no call is answered until the phase ends, then it gets 502 Bad Gateway
        (a client that gave up meanwhile hears nothing, ``status=499``). Nothing is applied
        during an outage. :meth:`outage_over` waits for its end.
        """
        end = time.monotonic()
        self._outage = []
        for status, seconds in phases:
            end += seconds
            self._outage.append((status, end))

    def outage_phase(self) -> tuple[int | None, float] | None:
        """The outage phase now in force, as ``(status, monotonic end)``; None when none."""
        now = time.monotonic()
        return next(((s, end) for s, end in self._outage if now < end), None)

    async def outage_over(self, *, timeout: float | None = None) -> None:
        """Wait until the last phase of :meth:`outage` has ended."""
        end = max((e for _, e in self._outage), default=0.0)
        remaining = end - time.monotonic()
        if timeout is not None and remaining > timeout:
            raise TimeoutError(f"BotApiStub: the outage lasts {remaining:.1f} s more")
        if remaining > 0:
            await asyncio.sleep(remaining)

    def hold_next(
        self, *methods: str, chat_id: int | None = None, after_applying: bool = False
    ) -> Hold:
        """Keep the next request of any of ``methods`` (to ``chat_id``, if given) waiting.

        The request is recorded in :attr:`calls` (with ``held=True``) but neither applied nor
        answered until :meth:`Hold.release`; a client that goes away meanwhile leaves it
        unapplied (``status=499``). Faults injected for the method apply after the release.
        ``after_applying=True`` applies the request first and holds only its answer.
        """
        if not methods:
            raise ValueError("name at least one method to hold")
        hold = Hold(frozenset(m.lower() for m in methods), chat_id, after_applying)
        self._holds.append(hold)
        return hold

    def cancel_hold(self, hold: Hold) -> None:
        """Forget a hold whose request has not arrived yet (one that has is released)."""
        if hold in self._holds:
            self._holds.remove(hold)
        hold.release()

    async def wait_for_hold(self, hold: Hold, *, timeout: float | None = None) -> Call:
        """Wait until ``hold``'s request arrived (and is being held); returns that call."""
        methods = "/".join(sorted(hold.methods))
        where = "" if hold.chat_id is None else f" to chat {hold.chat_id}"
        return await self._wait_until(
            lambda: hold.call, f"a {methods} request{where} to hold", timeout
        )

    def block_user(self, chat_id: int) -> None:
        """The user blocked the bot: calls targeting ``chat_id`` answer 403."""
        self.blocked.add(chat_id)

    def unblock_user(self, chat_id: int) -> None:
        """Undo :meth:`block_user`."""
        self.blocked.discard(chat_id)

    # ---------------------------------------------------------------- internals: waiting

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _wait_changed(self, timeout: float) -> None:
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    async def _wait_until(
        self,
        check: Callable[[], _T | None],
        what: str | Callable[[], str],
        timeout: float | None,
    ) -> _T:
        timeout = self.default_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                recent = ", ".join(f"{c.method}->{c.status}" for c in self.calls[-8:]) or "none"
                described = what() if callable(what) else what
                raise TimeoutError(
                    f"BotApiStub: timed out after {timeout:g}s waiting for {described} "
                    f"(last calls: {recent})"
                )
            await self._wait_changed(remaining)

    # ---------------------------------------------------------------- internals: HTTP

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        file_match = _FILE_PATH_RE.match(request.path)
        if file_match is not None:
            return self._serve_file(file_match["token"], file_match["path"])
        match = _METHOD_PATH_RE.match(request.path)
        if match is None:
            return self._error_response(404, "Not Found")
        token, sent_method = match["token"], match["method"]
        params: JSONDict = {}
        files: dict[str, UploadedFile] = {}
        body_error: _ApiError | None = None
        try:
            params, files = await self._read_params(request)
        except _ApiError as exc:
            body_error = exc
        method = self._method_names.get(sent_method.lower(), sent_method)
        call = Call(
            method=method,
            params=params,
            token=token,
            at=time.monotonic(),
            index=len(self.calls),
            http_method=request.method,
            files=files,
        )
        self.calls.append(call)
        self._notify()
        hold: Hold | None = None
        try:
            self._check_token(token)
            if body_error is not None:
                raise body_error
            await self._outage_answer()
            hold = await self._take_hold(call)
            queue = self._faults.get(method.lower())
            if queue:
                fault = queue.popleft()
                raise _ApiError(
                    fault.status, fault.description, parameters=fault.parameters, injected=True
                )
            handler = self._handlers.get(method.lower())
            if handler is None:
                raise _ApiError(404, "Not Found: method not found")
            result = await handler(call)
        except _ApiError as exc:
            if exc.status == 400 and not exc.injected:
                self.violations.append(f"{method}: {exc.description}")
            status = exc.status
            body: JSONDict = {"ok": False, "error_code": exc.status, "description": exc.description}
            if exc.parameters:
                body["parameters"] = exc.parameters
        except asyncio.CancelledError:
            call.status = 499  # client went away while we were waiting
            self._notify()
            raise
        except Exception as exc:  # a bug in the stub: answer like Telegram's 500, keep a trace
            self.internal_errors.append(f"{method}: {traceback.format_exc()}")
            status = 500
            body = {
                "ok": False,
                "error_code": 500,
                "description": f"Internal Server Error (BotApiStub bug: {exc!r})",
            }
        else:
            status, body = 200, {"ok": True, "result": result}
        return await self._answer(call, hold, status, body)

    async def _answer(
        self, call: Call, hold: Hold | None, status: int, body: JSONDict
    ) -> web.Response:
        if status == 200:
            call.applied = body
        if hold is not None and hold.after_applying:
            try:
                await self._held(hold, call)
            except asyncio.CancelledError:
                call.status = 499  # applied, but the client never heard of it
                self._notify()
                raise
        if self.latency is not None:
            self._notify()  # applied: tests see it now, the bot only later
            try:
                await asyncio.sleep(self._random.uniform(*self.latency))
            except asyncio.CancelledError:
                call.status = 499  # the client went away before the answer came back
                self._notify()
                raise
        call.status, call.response = status, body
        self._notify()
        return web.json_response(body, status=status)

    async def _outage_answer(self) -> None:
        """During an outage: raise its status at once, or hang until the phase ends."""
        phase = self.outage_phase()
        if phase is None:
            return
        status, end = phase
        if status is None:
            await asyncio.sleep(max(0.0, end - time.monotonic()))
            status = 502
        try:
            description = HTTPStatus(status).phrase
        except ValueError:
            description = "Injected failure"
        raise _ApiError(status, description, injected=True)

    async def _take_hold(self, call: Call) -> Hold | None:
        """The hold this request matches, if any; without `after_applying`, wait here."""
        hold = next((h for h in self._holds if h.matches(call.method, call.params)), None)
        if hold is not None:
            self._holds.remove(hold)
            if not hold.after_applying:
                await self._held(hold, call)
        return hold

    async def _held(self, hold: Hold, call: Call) -> None:
        hold.call, call.held = call, True
        self._notify()
        await hold.released.wait()

    @staticmethod
    def _error_response(status: int, description: str) -> web.Response:
        return web.json_response(
            {"ok": False, "error_code": status, "description": description}, status=status
        )

    def _check_token(self, token: str) -> None:
        if not _TOKEN_RE.match(token):
            raise _ApiError(404, "Not Found")
        if token in self.revoked_tokens or (
            self.accepted_tokens is not None and token not in self.accepted_tokens
        ):
            raise _ApiError(401, "Unauthorized")

    async def _read_params(self, request: web.Request) -> tuple[JSONDict, dict[str, UploadedFile]]:
        params: JSONDict = {k: _decode_form_value(k, v) for k, v in request.query.items()}
        files: dict[str, UploadedFile] = {}
        if not request.body_exists:
            return params, files
        content_type = request.content_type
        try:
            if content_type == "application/json":
                body = json.loads(await request.text() or "{}")
                if not isinstance(body, dict):
                    raise _bad_request("JSON object expected")
                for key, value in body.items():
                    params[key] = _normalize_json_value(key, value)
            elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        uploaded = UploadedFile(
                            field=key,
                            filename=value.filename,
                            content_type=value.content_type,
                            data=value.file.read(),
                        )
                        files[key] = uploaded
                        params[key] = uploaded
                    else:
                        params[key] = _decode_form_value(key, str(value))
            elif await request.read():
                raise _bad_request(f"unsupported Content-Type {content_type!r}")
        except web.HTTPRequestEntityTooLarge as exc:
            raise _ApiError(413, "Request Entity Too Large") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise _bad_request(f"can't parse request body: {exc}") from exc
        for key, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://"):
                name = value.removeprefix("attach://")
                if name not in files:
                    raise _bad_request(f"file {name!r} referenced by {key!r} is not attached")
                params[key] = files[name]
        return params, files

    def _serve_file(self, token: str, path: str) -> web.Response:
        if not _TOKEN_RE.match(token) or token in self.revoked_tokens:
            return self._error_response(404, "Not Found")
        for stored in self.files.values():
            if stored.file_path == path:
                return web.Response(
                    body=stored.data, content_type=stored.mime_type or "application/octet-stream"
                )
        return self._error_response(404, "Not Found")

    # ---------------------------------------------------------------- internals: model

    def _bot_user(self, token: str, *, full: bool = False) -> JSONDict:
        user: JSONDict = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": BOT_FIRST_NAME,
            "username": BOT_USERNAME,
        }
        if full:
            user.update(
                can_join_groups=True,
                can_read_all_group_messages=False,
                supports_inline_queries=False,
                can_connect_to_business=False,
                has_main_web_app=False,
            )
        return user

    @staticmethod
    def _user(user_id: int, first_name: str, language_code: str | None) -> JSONDict:
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code:
            user["language_code"] = language_code
        return user

    @staticmethod
    def _default_user_id(chat_id: int, chat_type: str, user_id: int | None) -> int:
        if chat_type == "private":
            if user_id is not None and user_id != chat_id:
                raise ValueError("in a private chat the user id equals the chat id")
            return chat_id
        return DEFAULT_GROUP_USER_ID if user_id is None else user_id

    def _chat(self, chat_id: int) -> JSONDict:
        known = self._chats.get(chat_id)
        if known is not None:
            return copy.deepcopy(known)
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "Test"}
        if chat_id <= -1_000_000_000_000:
            return {"id": chat_id, "type": "supergroup", "title": f"Test supergroup {chat_id}"}
        return {"id": chat_id, "type": "group", "title": f"Test group {chat_id}"}

    def _register_chat(self, chat_id: int, chat_type: ChatType, first_name: str) -> JSONDict:
        if chat_type not in ("private", "group", "supergroup", "channel"):
            raise ValueError(f"unknown chat_type {chat_type!r}")
        if (chat_type == "private") != (chat_id > 0):
            raise ValueError(
                f"chat id {chat_id} does not fit chat_type {chat_type!r} "
                "(private chats have positive ids, groups and channels negative ones)"
            )
        if chat_type == "private":
            chat: JSONDict = {"id": chat_id, "type": "private", "first_name": first_name}
        else:
            chat = {"id": chat_id, "type": chat_type, "title": f"Test {chat_type} {chat_id}"}
        self._chats[chat_id] = chat
        return copy.deepcopy(chat)

    def _alloc_message_id(self, chat_id: int) -> int:
        kind = self._chats.get(chat_id, {}).get("type") or ("private" if chat_id > 0 else "group")
        if kind in ("private", "group"):
            message_id = self._next_shared_id
            self._next_shared_id += 1
            return message_id
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _find_message(self, chat_id: int, message_id: int) -> SentMessage | None:
        return self._messages.get(chat_id, {}).get(message_id)

    def _feed_user_message(
        self,
        chat_id: int,
        content: JSONDict,
        kind: str,
        *,
        user_id: int | None,
        chat_type: ChatType,
        language_code: str | None,
        first_name: str,
    ) -> JSONDict:
        chat = self._register_chat(chat_id, chat_type, first_name)
        message_id = self._alloc_message_id(chat_id)
        now = int(time.time())
        raw: JSONDict = {"message_id": message_id, "date": now, "chat": chat}
        if chat_type == "channel":
            raw["sender_chat"] = copy.deepcopy(chat)
        else:
            raw["from"] = self._user(
                self._default_user_id(chat_id, chat_type, user_id), first_name, language_code
            )
        raw.update(copy.deepcopy(content))
        text = content.get("text")
        caption = content.get("caption")
        self._messages.setdefault(chat_id, {})[message_id] = SentMessage(
            chat_id=chat_id,
            message_id=message_id,
            kind=kind,
            from_bot=False,
            date=now,
            raw=raw,
            text=text,
            caption=caption,
            plain_text=text if text is not None else caption,
            entities=list(content.get("entities", [])),
        )
        return self.feed_raw({"channel_post" if chat_type == "channel" else "message": raw})

    def _store_file(
        self, data: bytes, folder: str, filename: str | None, mime_type: str | None
    ) -> StoredFile:
        n = next(self._ids)
        suffix = ""
        if filename and "." in filename:
            suffix = "." + filename.rsplit(".", 1)[1]
        stored = StoredFile(
            file_id=f"BQACAgIAAxkB{n:08d}stub",
            file_unique_id=f"AgAD{n:06d}",
            file_path=f"{folder}/file_{n}{suffix}",
            data=data,
            file_name=filename,
            mime_type=mime_type,
        )
        self.files[stored.file_id] = stored
        return stored

    def _photo_sizes(self, content: bytes) -> list[JSONDict]:
        sizes = []
        for side in (90, 320, 800):
            stored = self._store_file(content, "photos", "file.jpg", "image/jpeg")
            sizes.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "width": side,
                    "height": side,
                    "file_size": len(content),
                }
            )
        return sizes

    def _target_chat(self, params: JSONDict) -> int:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        if isinstance(chat_id, str):
            if chat_id.lstrip("-").isdigit():
                chat_id = int(chat_id)
            else:
                username = chat_id.removeprefix("@")
                found = next(
                    (cid for cid, c in self._chats.items() if c.get("username") == username),
                    None,
                )
                if found is None:
                    raise _bad_request("chat not found")
                chat_id = found
        if not isinstance(chat_id, int) or isinstance(chat_id, bool):
            raise _bad_request("chat not found")
        if chat_id in self.blocked:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    @staticmethod
    def _int_param(params: JSONDict, name: str, default: int | None = None) -> int | None:
        value = params.get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                return int(value)
            except (TypeError, ValueError) as exc:
                raise _bad_request(f"wrong parameter {name!r}: {value!r}") from exc
        return value

    @staticmethod
    def _check_markup(markup: Any) -> JSONDict | None:
        """Validate a reply_markup; returns it (empty inline keyboards become None)."""
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise _bad_request(
                    'can\'t parse inline keyboard button: field "inline_keyboard"'
                    " must be an Array of Arrays"
                )
            for row in rows:
                for button in row:
                    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                        raise _bad_request(
                            "can't parse inline keyboard button: Text must be a String"
                        )
                    actions = _INLINE_BUTTON_ACTIONS.intersection(button)
                    if len(actions) != 1:
                        raise _bad_request(
                            "can't parse inline keyboard button: exactly one of the optional "
                            f"fields must be used, got {sorted(actions)} on button "
                            f"{button['text']!r}"
                        )
                    if "callback_data" in button:
                        data = button["callback_data"]
                        size = len(data.encode()) if isinstance(data, str) else -1
                        if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
                            raise _bad_request(
                                f"BUTTON_DATA_INVALID (callback_data {data!r} of button "
                                f"{button['text']!r} is {size} bytes, allowed 1-"
                                f"{MAX_CALLBACK_DATA_BYTES})"
                            )
            if not any(rows):
                return None
            return copy.deepcopy(markup)
        if any(key in markup for key in ("keyboard", "remove_keyboard", "force_reply")):
            return copy.deepcopy(markup)
        raise _bad_request("can't parse reply keyboard markup JSON object")

    @staticmethod
    def _check_text(
        text: Any, parse_mode: Any, entities: Any, *, caption: bool = False
    ) -> tuple[str, list[JSONDict]]:
        if text is None or text == "":
            if caption:
                return "", []
            raise _bad_request("message text is empty")
        if not isinstance(text, str):
            text = json.dumps(text)
        plain, ents = _render(text, parse_mode if isinstance(parse_mode, str) else None, entities)
        limit = MAX_CAPTION_LENGTH if caption else MAX_MESSAGE_LENGTH
        if not caption and not plain.strip():
            raise _bad_request("message text is empty")
        if len(plain) > limit:
            what = "message caption is too long" if caption else "message is too long"
            raise _bad_request(f"{what} ({len(plain)} > {limit} characters)")
        return plain, ents

    def _new_bot_message(
        self,
        call: Call,
        chat_id: int,
        kind: str,
        content: JSONDict,
        *,
        text: str | None = None,
        caption: str | None = None,
        plain: str | None = None,
        entities: list[JSONDict] | None = None,
        reply_markup: JSONDict | None = None,
        file: UploadedFile | None = None,
    ) -> SentMessage:
        message_id = self._alloc_message_id(chat_id)
        now = int(time.time())
        raw: JSONDict = {
            "message_id": message_id,
            "from": self._bot_user(call.token),
            "chat": self._chat(chat_id),
            "date": now,
            **content,
        }
        message = SentMessage(
            chat_id=chat_id,
            message_id=message_id,
            kind=kind,
            from_bot=True,
            date=now,
            raw=raw,
            text=text,
            caption=caption,
            parse_mode=call.params.get("parse_mode"),
            reply_markup=reply_markup,
            plain_text=plain,
            entities=entities or [],
            file=file,
        )
        self._apply_rendering(message)
        self._messages.setdefault(chat_id, {})[message_id] = message
        return message

    @staticmethod
    def _apply_rendering(message: SentMessage) -> None:
        """Refresh ``message.raw`` from its text/caption/entities/keyboard fields."""
        raw = message.raw
        text_key, entities_key = (
            ("text", "entities") if message.kind == "text" else ("caption", "caption_entities")
        )
        raw.pop(text_key, None)
        raw.pop(entities_key, None)
        if message.plain_text:
            raw[text_key] = message.plain_text
            if message.entities:
                raw[entities_key] = copy.deepcopy(message.entities)
        raw.pop("reply_markup", None)
        if message.has_inline_keyboard:
            raw["reply_markup"] = copy.deepcopy(message.reply_markup)
        if message.edit_date is not None:
            raw["edit_date"] = message.edit_date

    def _message_to_edit(self, params: JSONDict) -> SentMessage:
        if params.get("inline_message_id"):
            raise _bad_request("MESSAGE_ID_INVALID (inline messages are not modelled by the stub)")
        chat_id = self._target_chat(params)
        message_id = self._int_param(params, "message_id")
        message = None if message_id is None else self._find_message(chat_id, message_id)
        if message is None:
            raise _bad_request("message to edit not found")
        if not message.from_bot:
            raise _bad_request("message can't be edited")
        return message

    def _commit_edit(
        self,
        message: SentMessage,
        *,
        plain: str | None,
        entities: list[JSONDict],
        reply_markup: JSONDict | None,
        raw_text: str | None,
        parse_mode: str | None,
    ) -> JSONDict:
        inline_markup = reply_markup if reply_markup and "inline_keyboard" in reply_markup else None
        current_markup = message.reply_markup if message.has_inline_keyboard else None
        if (plain or None, entities, inline_markup) == (
            message.plain_text or None,
            message.entities,
            current_markup,
        ):
            raise _bad_request(_ERR_NOT_MODIFIED.removeprefix("Bad Request: "))
        message.history.append(
            (message.text if message.kind == "text" else message.caption, message.reply_markup)
        )
        if message.kind == "text":
            message.text = raw_text
        else:
            message.caption = raw_text
        message.plain_text = plain
        message.entities = entities
        message.parse_mode = parse_mode
        message.reply_markup = inline_markup
        message.edit_date = int(time.time())
        self._apply_rendering(message)
        return copy.deepcopy(message.raw)

    # ---------------------------------------------------------------- method handlers

    async def _get_me(self, call: Call) -> Any:
        return self._bot_user(call.token, full=True)

    async def _get_updates(self, call: Call) -> Any:
        params = call.params
        if self.webhook_url:
            raise _ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = self._int_param(params, "offset")
        limit = min(max(self._int_param(params, "limit", 100) or 100, 1), 100)
        timeout = max(self._int_param(params, "timeout", 0) or 0, 0)
        if isinstance(params.get("allowed_updates"), list):
            self.allowed_updates = list(params["allowed_updates"])
        if offset is not None and offset < 0:
            pending = self.pending_updates()
            if len(pending) > -offset:
                self._confirm(pending[offset]["update_id"])
        elif offset:
            self._confirm(offset)
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()  # an older long poll sees the new generation and ends with 409
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                raise _ApiError(409, _ERR_CONFLICT_POLL)
            batch = self.pending_updates()[:limit]
            remaining = deadline - loop.time()
            if batch or self._stopping or remaining <= 0:
                return batch
            await self._wait_changed(remaining)

    def _confirm(self, offset: int) -> None:
        if offset > self._confirmed_offset:
            self._confirmed_offset = offset
            self._notify()

    def _drop_pending(self) -> None:
        if self.updates:
            self._confirm(self.updates[-1]["update_id"] + 1)

    async def _set_webhook(self, call: Call) -> Any:
        url = call.params.get("url") or ""
        if url and not str(url).startswith("https://"):
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook_url = str(url)
        if isinstance(call.params.get("allowed_updates"), list):
            self.allowed_updates = list(call.params["allowed_updates"])
        if call.params.get("drop_pending_updates") is True:
            self._drop_pending()
        self._poll_generation += 1  # a running long poll ends with 409
        self._notify()
        return True

    async def _delete_webhook(self, call: Call) -> Any:
        self.webhook_url = ""
        if call.params.get("drop_pending_updates") is True:
            self._drop_pending()
        return True

    async def _get_webhook_info(self, call: Call) -> Any:
        info: JSONDict = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self.pending_updates()),
        }
        if self.webhook_url:
            info["max_connections"] = 40
            if self.allowed_updates is not None:
                info["allowed_updates"] = self.allowed_updates
        return info

    @staticmethod
    def _commands_key(scope: Any, language_code: Any) -> tuple[str, str]:
        if scope is None:
            scope = {"type": "default"}
        if not isinstance(scope, dict) or "type" not in scope:
            raise _bad_request("can't parse BotCommandScope JSON object")
        if language_code is not None and not isinstance(language_code, str):
            raise _bad_request("wrong parameter language_code")
        return json.dumps(scope, sort_keys=True), language_code or ""

    async def _set_my_commands(self, call: Call) -> Any:
        commands = call.params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad_request("BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not isinstance(command, dict):
                raise _bad_request("can't parse BotCommand JSON object")
            name, description = command.get("command"), command.get("description")
            if not isinstance(name, str) or not _COMMAND_RE.match(name):
                raise _bad_request(f"BOT_COMMAND_INVALID ({name!r})")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise _bad_request(f"BOT_COMMAND_DESCRIPTION_INVALID (command {name!r})")
        key = self._commands_key(call.params.get("scope"), call.params.get("language_code"))
        self._commands[key] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, call: Call) -> Any:
        key = self._commands_key(call.params.get("scope"), call.params.get("language_code"))
        return copy.deepcopy(self._commands.get(key, []))

    async def _delete_my_commands(self, call: Call) -> Any:
        key = self._commands_key(call.params.get("scope"), call.params.get("language_code"))
        self._commands.pop(key, None)
        return True

    async def _send_message(self, call: Call) -> Any:
        params = call.params
        chat_id = self._target_chat(params)
        text = params.get("text")
        plain, entities = self._check_text(text, params.get("parse_mode"), params.get("entities"))
        markup = self._check_markup(params.get("reply_markup"))
        content: JSONDict = {}
        if isinstance(params.get("link_preview_options"), dict):
            content["link_preview_options"] = params["link_preview_options"]
        message = self._new_bot_message(
            call,
            chat_id,
            "text",
            content,
            text=str(text),
            plain=plain,
            entities=entities,
            reply_markup=markup,
        )
        return copy.deepcopy(message.raw)

    async def _edit_message_text(self, call: Call) -> Any:
        params = call.params
        message = self._message_to_edit(params)
        if message.kind != "text":
            raise _bad_request("there is no text in the message to edit")
        text = params.get("text")
        plain, entities = self._check_text(text, params.get("parse_mode"), params.get("entities"))
        markup = self._check_markup(params.get("reply_markup"))
        return self._commit_edit(
            message,
            plain=plain,
            entities=entities,
            reply_markup=markup,
            raw_text=str(text),
            parse_mode=params.get("parse_mode"),
        )

    async def _edit_message_caption(self, call: Call) -> Any:
        params = call.params
        message = self._message_to_edit(params)
        if message.kind == "text":
            raise _bad_request("there is no caption in the message to edit")
        caption = params.get("caption")
        plain, entities = self._check_text(
            caption, params.get("parse_mode"), params.get("caption_entities"), caption=True
        )
        markup = self._check_markup(params.get("reply_markup"))
        return self._commit_edit(
            message,
            plain=plain or None,
            entities=entities,
            reply_markup=markup,
            raw_text=caption,
            parse_mode=params.get("parse_mode"),
        )

    async def _edit_message_reply_markup(self, call: Call) -> Any:
        message = self._message_to_edit(call.params)
        markup = self._check_markup(call.params.get("reply_markup"))
        if markup is not None and "inline_keyboard" not in markup:
            raise _bad_request("inline keyboard expected")
        return self._commit_edit(
            message,
            plain=message.plain_text,
            entities=message.entities,
            reply_markup=markup,
            raw_text=message.text if message.kind == "text" else message.caption,
            parse_mode=message.parse_mode,
        )

    async def _answer_callback_query(self, call: Call) -> Any:
        query_id = call.params.get("callback_query_id")
        if query_id is None:
            raise _bad_request("callback_query_id is empty")
        query_id = str(query_id)
        if query_id not in self._callbacks or query_id in self.callback_answers:
            raise _bad_request(_ERR_QUERY_INVALID.removeprefix("Bad Request: "))
        text = call.params.get("text")
        if isinstance(text, str) and len(text) > MAX_CALLBACK_ANSWER_LENGTH:
            raise _bad_request("MESSAGE_TOO_LONG (answerCallbackQuery text > 200 characters)")
        self.callback_answers[query_id] = dict(call.params)
        return True

    def _media_input(self, call: Call, name: str) -> tuple[StoredFile | None, UploadedFile | None]:
        value = call.params.get(name)
        if isinstance(value, UploadedFile):
            return None, value
        if isinstance(value, str) and value:
            if value in self.files:
                return self.files[value], None
            if value.startswith(("http://", "https://")):
                filename = value.rstrip("/").rsplit("/", 1)[-1] or "file"
                return None, UploadedFile(name, filename, None, b"")
            raise _bad_request("wrong file identifier/HTTP URL specified")
        raise _bad_request(f"there is no {name} in the request")

    def _media_caption(self, call: Call) -> tuple[str | None, str | None, list[JSONDict]]:
        caption = call.params.get("caption")
        plain, entities = self._check_text(
            caption,
            call.params.get("parse_mode"),
            call.params.get("caption_entities"),
            caption=True,
        )
        return (None if caption is None else str(caption)), (plain or None), entities

    async def _send_document(self, call: Call) -> Any:
        chat_id = self._target_chat(call.params)
        known, upload = self._media_input(call, "document")
        caption, plain, entities = self._media_caption(call)
        markup = self._check_markup(call.params.get("reply_markup"))
        if known is None:
            assert upload is not None
            known = self._store_file(
                upload.data,
                "documents",
                upload.filename or "document",
                upload.content_type or "application/octet-stream",
            )
        document = {
            "file_id": known.file_id,
            "file_unique_id": known.file_unique_id,
            "file_name": known.file_name,
            "mime_type": known.mime_type,
            "file_size": len(known.data),
        }
        message = self._new_bot_message(
            call,
            chat_id,
            "document",
            {"document": {k: v for k, v in document.items() if v is not None}},
            caption=caption,
            plain=plain,
            entities=entities,
            reply_markup=markup,
            file=upload,
        )
        return copy.deepcopy(message.raw)

    async def _send_photo(self, call: Call) -> Any:
        chat_id = self._target_chat(call.params)
        known, upload = self._media_input(call, "photo")
        caption, plain, entities = self._media_caption(call)
        markup = self._check_markup(call.params.get("reply_markup"))
        data = known.data if known is not None else upload.data if upload is not None else b""
        message = self._new_bot_message(
            call,
            chat_id,
            "photo",
            {"photo": self._photo_sizes(data)},
            caption=caption,
            plain=plain,
            entities=entities,
            reply_markup=markup,
            file=upload,
        )
        return copy.deepcopy(message.raw)

    async def _send_chat_action(self, call: Call) -> Any:
        self._target_chat(call.params)
        action = call.params.get("action")
        if action not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        return True

    async def _delete_message(self, call: Call) -> Any:
        chat_id = self._target_chat(call.params)
        message_id = self._int_param(call.params, "message_id")
        chat_messages = self._messages.get(chat_id, {})
        if message_id is None or message_id not in chat_messages:
            raise _bad_request("message to delete not found")
        self.deleted_messages.append(chat_messages.pop(message_id))
        return True

    async def _get_file(self, call: Call) -> Any:
        stored = self.files.get(str(call.params.get("file_id", "")))
        if stored is None:
            raise _bad_request("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    async def _close(self, call: Call) -> Any:
        return True

    async def _log_out(self, call: Call) -> Any:
        self.logged_out = True
        return True


def _decode_form_value(key: str, value: str) -> Any:
    """Form fields are strings; PTB JSON-encodes every non-string value."""
    if key in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _normalize_json_value(key: str, value: Any) -> Any:
    if key in _OBJECT_PARAMS and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
