"""Tests proving that :mod:`tests.botapi_stub` speaks the Bot API the way PTB expects.

Every test drives the stub through python-telegram-bot itself (``telegram.Bot`` or a real
``Application``), so a passing suite means end-to-end tests can rely on the stub.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from tests.botapi_stub import BOT_USERNAME, DEFAULT_TOKEN, BotApiStub

CHAT = 4242


def _keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(t, callback_data=d) for t, d in pairs]])


def _bad_request(pattern: str) -> pytest.RaisesExc[BadRequest]:
    """PTB strips "Bad Request: " and lower-cases the rest of the description."""
    return pytest.raises(BadRequest, match=f"(?i){pattern}")


@pytest.fixture
async def api() -> AsyncIterator[BotApiStub]:
    async with BotApiStub() as stub:
        yield stub


@pytest.fixture
async def bot(api: BotApiStub) -> AsyncIterator[Bot]:
    async with Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url) as b:
        yield b


async def _raw_post(api: BotApiStub, path: str, **kwargs: object) -> tuple[int, dict]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{api.root}{path}", **kwargs) as response,  # type: ignore[arg-type]
    ):
        return response.status, json.loads(await response.text())


# ------------------------------------------------------------------------------ basics


async def test_get_me_returns_the_test_bot(api: BotApiStub, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.is_bot
    assert me.username == BOT_USERNAME
    assert me.id == int(DEFAULT_TOKEN.split(":")[0])
    assert api.calls_of("getMe")[0].token == DEFAULT_TOKEN
    assert api.tokens == [DEFAULT_TOKEN]


async def test_send_and_edit_messages_with_inline_keyboard(api: BotApiStub, bot: Bot) -> None:
    first = await bot.send_message(
        CHAT,
        "How do your legs feel?",
        reply_markup=_keyboard(("Cramp", "sym:cramp"), ("Restless", "sym:rls")),
    )
    assert first.chat.id == CHAT
    assert first.text == "How do your legs feel?"
    assert first.reply_markup is not None
    assert first.reply_markup.inline_keyboard[0][1].callback_data == "sym:rls"

    second = await bot.send_message(CHAT, "second")
    assert second.message_id == first.message_id + 1

    edited = await bot.edit_message_text(
        "Noted: <b>cramp</b>",
        chat_id=CHAT,
        message_id=first.message_id,
        parse_mode=ParseMode.HTML,
        reply_markup=_keyboard(("Done", "done")),
    )
    assert isinstance(edited, type(first))
    assert edited.text == "Noted: cramp"
    assert edited.entities[0].type == "bold"
    assert edited.edit_date is not None

    screen = api.messages(CHAT)
    assert [m.message_id for m in screen] == [first.message_id, second.message_id]
    assert screen[0].text == "Noted: <b>cramp</b>"
    assert screen[0].plain_text == "Noted: cramp"
    assert screen[0].parse_mode == "HTML"
    assert api.buttons(screen[0]) == [("Done", "done")]
    assert screen[0].history[0][0] == "How do your legs feel?"

    await bot.edit_message_reply_markup(CHAT, first.message_id, reply_markup=None)
    assert api.messages(CHAT)[0].reply_markup is None
    last = api.last_message(CHAT)
    assert last is not None and last.text == "second"
    api.assert_no_violations()


async def test_callback_press_and_answer(api: BotApiStub, bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "Pick", reply_markup=_keyboard(("Yes", "y"), ("No", "n")))
    update = await api.press(CHAT, "No")
    query = update["callback_query"]
    assert query["data"] == "n"
    assert query["message"]["message_id"] == sent.message_id
    assert query["chat_instance"]
    assert query["from"]["id"] == CHAT

    parsed = Update.de_json(update, bot)
    assert parsed.callback_query is not None
    assert parsed.callback_query.message is not None
    assert parsed.callback_query.message.text == "Pick"

    assert api.unanswered_callbacks() == [query["id"]]
    assert await bot.answer_callback_query(query["id"], text="ok") is True
    assert api.callback_answers[query["id"]]["text"] == "ok"
    assert api.unanswered_callbacks() == []
    api.assert_no_violations()


async def test_send_document_and_photo_and_download(api: BotApiStub, bot: Bot) -> None:
    payload = b"%PDF-1.4 night log\n"
    message = await bot.send_document(CHAT, payload, filename="night-log.pdf", caption="Your log")
    assert message.document is not None
    assert message.document.file_name == "night-log.pdf"
    assert message.caption == "Your log"

    call = api.calls_of("sendDocument")[0]
    upload = call.files["document"]
    assert upload.data == payload
    assert upload.filename == "night-log.pdf"
    assert call.params["caption"] == "Your log"
    assert call.params["chat_id"] == CHAT
    stored = api.last_message(CHAT)
    assert stored is not None and stored.kind == "document" and stored.file == upload

    file = await bot.get_file(message.document.file_id)
    assert bytes(await file.download_as_bytearray()) == payload

    photo = await bot.send_photo(CHAT, b"\xff\xd8\xff fake", filename="leg.jpg")
    assert photo.photo[-1].width == 800
    assert api.calls_of("sendPhoto")[0].files["photo"].filename == "leg.jpg"


async def test_other_methods(api: BotApiStub, bot: Bot) -> None:
    assert await bot.delete_webhook(drop_pending_updates=False)
    info = await bot.get_webhook_info()
    assert info.url == "" and info.pending_update_count == 0

    commands = [BotCommand("start", "Begin"), BotCommand("help", "How it works")]
    assert await bot.set_my_commands(commands)
    assert await bot.set_my_commands([BotCommand("start", "Beginnen")], language_code="de")
    assert [c.command for c in await bot.get_my_commands()] == ["start", "help"]
    assert api.commands(language_code="de") == [("start", "Beginnen")]
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()

    assert await bot.send_chat_action(CHAT, ChatAction.TYPING)
    sent = await bot.send_message(CHAT, "temporary")
    assert await bot.delete_message(CHAT, sent.message_id)
    assert api.messages(CHAT) == []
    assert api.deleted_messages[0].text == "temporary"

    assert await bot.close()
    assert await bot.log_out()
    assert api.logged_out
    api.assert_no_violations()


# ------------------------------------------------------------------------------ updates


async def test_get_updates_long_poll_and_offset_confirmation(api: BotApiStub, bot: Bot) -> None:
    mark = api.mark()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await api.wait_for_call("getUpdates", after=mark)  # the long poll is waiting
    assert not poll.done()

    fed = api.feed_message(CHAT, "/start now")
    updates = await asyncio.wait_for(poll, timeout=2)  # woken immediately, not after 5 s
    assert [u.update_id for u in updates] == [fed["update_id"]]
    message = updates[0].message
    assert message is not None and message.text == "/start now"
    assert message.entities[0].type == "bot_command" and message.entities[0].length == 6
    assert message.from_user is not None and message.from_user.language_code == "en"

    # Without a higher offset the update is redelivered, with one it is gone for good.
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [fed["update_id"]]
    assert api.pending_updates() == [fed]
    assert await bot.get_updates(offset=fed["update_id"] + 1, timeout=0) == ()
    await api.wait_until_confirmed(fed)
    assert api.confirmed_offset == fed["update_id"] + 1
    assert api.pending_updates() == []
    assert await bot.get_updates(timeout=0) == ()


async def test_get_updates_limit_and_times_out_empty(api: BotApiStub, bot: Bot) -> None:
    ids = [api.feed_message(CHAT, f"m{i}")["update_id"] for i in range(3)]
    assert [u.update_id for u in await bot.get_updates(limit=2)] == ids[:2]
    assert await bot.get_updates(offset=ids[-1] + 1, timeout=0) == ()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.8 < loop.time() - started < 3


async def test_feed_shapes_deserialize(api: BotApiStub, bot: Bot) -> None:
    group, channel = -100, -1_001_234_567_890
    api.feed_message(group, "/start@nightlegs_test_bot", chat_type="group", user_id=7)
    api.feed_message(channel, "news", chat_type="channel")
    api.feed_sticker(CHAT)
    api.feed_photo(CHAT, caption="my leg")
    api.feed_voice(CHAT, duration=4)
    text = api.feed_message(CHAT, "hello", language_code="de", first_name="Ann")
    api.feed_edited_message(CHAT, text["message"]["message_id"], "hello!")
    api.feed_raw(
        {
            "message": {
                "message_id": 99,
                "date": 0,
                "chat": {"id": 5, "type": "private"},
                "text": "raw",
            }
        }
    )

    updates = await bot.get_updates()
    assert len(updates) == 8
    group_msg, channel_post, sticker, photo, voice, hello, edited, raw = updates
    assert group_msg.message is not None and group_msg.message.chat.type == "group"
    assert group_msg.message.from_user is not None and group_msg.message.from_user.id == 7
    assert channel_post.channel_post is not None and channel_post.channel_post.sender_chat
    assert sticker.message is not None and sticker.message.sticker is not None
    assert photo.message is not None and photo.message.caption == "my leg"
    assert voice.message is not None and voice.message.voice is not None
    assert hello.message is not None and hello.message.from_user is not None
    assert hello.message.from_user.first_name == "Ann"
    assert edited.edited_message is not None and edited.edited_message.text == "hello!"
    assert raw.message is not None and raw.message.text == "raw"

    assert photo.message.photo
    file = await bot.get_file(photo.message.photo[-1].file_id)
    assert bytes(await file.download_as_bytearray()).startswith(b"\xff\xd8")


async def test_second_long_poll_terminates_the_first(api: BotApiStub, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await api.wait_for_call("getUpdates")
    # PTB's get_updates connection pool has a single connection, so use a second instance.
    async with Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url) as other:
        assert await other.get_updates(timeout=0) == ()
    with pytest.raises(Conflict, match="terminated by other getUpdates"):
        await asyncio.wait_for(first, timeout=2)


async def test_drop_pending_updates(api: BotApiStub, bot: Bot) -> None:
    api.feed_message(CHAT, "old")
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert api.pending_updates() == []
    assert await bot.get_updates(timeout=0) == ()


# ------------------------------------------------------------------------------ faults


async def test_rate_limit_raises_retry_after(
    api: BotApiStub, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # PTB 22 warns about int retry_after otherwise
    api.rate_limit_next("sendMessage", retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(CHAT, "hi")
    assert caught.value.retry_after == dtm.timedelta(seconds=7)
    failed = api.calls_of("sendMessage")[0]
    assert failed.status == 429
    assert failed.response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }
    assert (await bot.send_message(CHAT, "hi")).text == "hi"
    assert api.violations == []


async def test_server_errors_and_blocked_user(api: BotApiStub, bot: Bot) -> None:
    api.fail_next("sendMessage", status=500, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Internal Server Error"):
            await bot.send_message(CHAT, "hi")
    api.fail_next("getMe", status=502)
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.get_me()
    assert (await bot.send_message(CHAT, "hi")).text == "hi"

    api.block_user(CHAT)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(CHAT, "still there?")
    api.unblock_user(CHAT)
    await bot.send_message(CHAT, "welcome back")
    assert api.violations == []


async def test_protocol_errors_over_raw_http(api: BotApiStub) -> None:
    status, body = await _raw_post(api, f"/bot{DEFAULT_TOKEN}/fooBar")
    assert (status, body) == (
        404,
        {"ok": False, "error_code": 404, "description": "Not Found: method not found"},
    )
    status, body = await _raw_post(api, "/botnot-a-token/getMe")
    assert status == 404 and body["ok"] is False and body["error_code"] == 404
    api.revoke_token("1:revoked")
    status, body = await _raw_post(api, "/bot1:revoked/getMe")
    assert (status, body["error_code"], body["description"]) == (401, 401, "Unauthorized")

    status, body = await _raw_post(
        api, f"/bot{DEFAULT_TOKEN}/sendMessage", json={"chat_id": CHAT, "text": "json body"}
    )
    assert status == 200 and body["result"]["text"] == "json body"
    status, body = await _raw_post(
        api,
        f"/bot{DEFAULT_TOKEN}/sendMessage",
        data=b"{broken",
        headers={"Content-Type": "application/json"},
    )
    assert status == 400 and body["description"].startswith("Bad Request: ")
    assert len(api.violations) == 1


async def test_timeout_error_names_what_was_awaited(api: BotApiStub) -> None:
    with pytest.raises(TimeoutError, match="sendMessage"):
        await api.wait_for_call("sendMessage", timeout=0.05)
    with pytest.raises(TimeoutError, match="update 5 to be confirmed"):
        await api.wait_until_confirmed(5, timeout=0.05)


# ------------------------------------------------------------------------------ limits


async def test_telegram_limits_are_flagged(api: BotApiStub, bot: Bot) -> None:
    with _bad_request("message is too long"):
        await bot.send_message(CHAT, "x" * 4097)
    await bot.send_message(CHAT, "x" * 4096)  # exactly at the limit is fine

    with _bad_request("BUTTON_DATA_INVALID"):
        await bot.send_message(CHAT, "menu", reply_markup=_keyboard(("Too long", "d" * 65)))

    with _bad_request("message text is empty"):
        await bot.send_message(CHAT, "   ")

    sent = await bot.send_message(CHAT, "same", reply_markup=_keyboard(("A", "a")))
    with _bad_request("message is not modified"):
        await bot.edit_message_text(
            "same", chat_id=CHAT, message_id=sent.message_id, reply_markup=_keyboard(("A", "a"))
        )

    with _bad_request("query ID is invalid"):
        await bot.answer_callback_query("no-such-query")
    query_id = (await api.press(CHAT, "A"))["callback_query"]["id"]
    await bot.answer_callback_query(query_id)
    with _bad_request("query ID is invalid"):
        await bot.answer_callback_query(query_id)

    with _bad_request("can't parse entities"):
        await bot.send_message(CHAT, "<b>unclosed", parse_mode=ParseMode.HTML)
    with _bad_request("Character '.' is reserved"):
        await bot.send_message(CHAT, "*Done*.", parse_mode=ParseMode.MARKDOWN_V2)
    ok = await bot.send_message(CHAT, r"*Done*\. [site](https://a.b/c-d)", parse_mode="MarkdownV2")
    assert ok.text == "Done. site"
    assert [e.type for e in ok.entities] == ["bold", "text_link"]

    assert len(api.violations) == 8, api.violations
    assert "sendMessage: Bad Request: message is too long" in api.violations[0]
    assert any("message is not modified" in v for v in api.violations)
    assert sum("answerCallbackQuery" in v for v in api.violations) == 2
    with pytest.raises(AssertionError, match="Bot API rules violated"):
        api.assert_no_violations()


# ------------------------------------------------------------------------------ Application


async def _start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(
        "Hello! What woke you up?", reply_markup=_keyboard(("Cramp", "cramp"))
    )


async def _button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    await query.answer()
    await query.edit_message_text(f"You chose {query.data}")


def _build_app(api: BotApiStub) -> Application:
    app = (
        ApplicationBuilder()
        .token(api.token)
        .base_url(api.base_url)
        .base_file_url(api.base_file_url)
        .build()
    )
    app.add_handler(CommandHandler("start", _start))
    app.add_handler(CallbackQueryHandler(_button))
    return app


async def _run_polling(app: Application) -> None:
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)


async def _stop(app: Application) -> None:
    assert app.updater is not None
    await app.updater.stop()
    await app.stop()
    await app.shutdown()


async def test_application_polls_and_replies(api: BotApiStub) -> None:
    app = _build_app(api)
    await _run_polling(app)
    try:
        mark = api.mark()
        start = api.feed_message(CHAT, "/start")
        reply = await api.wait_for_message(CHAT, after=mark)
        assert reply.text == "Hello! What woke you up?"
        assert reply.buttons == [("Cramp", "cramp")]

        await api.press(CHAT, "Cramp")
        await api.wait_for_message(CHAT, lambda m: m.text == "You chose cramp", after=mark)
        await api.wait_for_call("answerCallbackQuery", after=mark)
        await api.wait_until_confirmed(start)
    finally:
        await _stop(app)
    assert api.pending_updates() == []
    assert api.unanswered_callbacks() == []
    api.assert_no_violations()

    # A second Application against the same stub continues where the first left off.
    app2 = _build_app(api)
    await _run_polling(app2)
    try:
        mark = api.mark()
        api.feed_message(CHAT, "/start")
        reply = await api.wait_for_message(CHAT, after=mark)
        assert reply.message_id == 4  # /start, reply, /start, reply: one counter, one chat
    finally:
        await _stop(app2)
    assert len([m for m in api.messages(CHAT) if m.text == "Hello! What woke you up?"]) == 1
    api.assert_no_violations()


async def test_unconfirmed_update_is_redelivered_after_crash(api: BotApiStub) -> None:
    # A "crashed" bot fetched the update but never confirmed it with a higher offset.
    async with Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url) as bot:
        fed = api.feed_message(CHAT, "/start")
        assert [u.update_id for u in await bot.get_updates(timeout=0)] == [fed["update_id"]]

    app = _build_app(api)
    await _run_polling(app)
    try:
        reply = await api.wait_for_message(CHAT)
        assert reply.text == "Hello! What woke you up?"
        await api.wait_until_confirmed(fed)
    finally:
        await _stop(app)


# ------------------------------------------------------------------------------ numbering


async def test_private_chats_share_one_counter_of_message_ids_like_telegram(
    api: BotApiStub, bot: Bot
) -> None:
    first = await bot.send_message(CHAT, "one")
    typed = api.feed_message(CHAT + 1, "hello")  # another person: the same counter
    second = await bot.send_message(CHAT + 1, "two")
    third = await bot.send_message(CHAT, "three")
    assert typed["message"]["message_id"] == first.message_id + 1
    assert (second.message_id, third.message_id) == (first.message_id + 2, first.message_id + 3)
    with _bad_request("message to edit not found"):  # an id of another chat is not found here
        await bot.edit_message_text("x", chat_id=CHAT, message_id=second.message_id)


async def test_a_supergroup_counts_its_own_message_ids(api: BotApiStub, bot: Bot) -> None:
    group = -1001234
    api.feed_message(group, "hi all", chat_type="supergroup")
    await bot.send_message(CHAT, "private")
    sent = await bot.send_message(group, "hello group")
    assert sent.message_id == 2


async def test_latency_answers_late_and_a_client_that_leaves_still_has_the_call_applied() -> None:
    async with (
        BotApiStub(latency=(0.2, 0.3), seed=1) as api,
        aiohttp.ClientSession() as http,
    ):
        url = f"{api.base_url}{api.token}/sendMessage"
        began = asyncio.get_running_loop().time()
        async with http.post(url, json={"chat_id": CHAT, "text": "late"}) as response:
            assert response.status == 200
        assert asyncio.get_running_loop().time() - began >= 0.2

        async def send() -> None:
            async with http.post(url, json={"chat_id": CHAT, "text": "unheard"}):
                pass

        leaving = asyncio.create_task(send())
        await api.wait_for_message(CHAT, lambda m: m.text == "unheard")
        leaving.cancel()
        call = await api.wait_for_call("sendMessage", lambda c: c.status == 499)
        assert call.params["text"] == "unheard"
        assert [m.text for m in api.messages(CHAT)] == ["late", "unheard"]
