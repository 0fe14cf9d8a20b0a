"""A first end-to-end walk: /start, consent, safety screen, emergency."""

from tests.botapi_stub import BotApiStub
from tests.telegram_harness import RunningBot


async def test_an_emergency_answer_ends_the_check_with_emergency_advice(database_url: str) -> None:
    async with BotApiStub() as api:
        bot = await RunningBot(api, database_url).start()
        try:
            intro = await bot.send("/start")
            assert "not a diagnosis" in intro[-1].plain_text
            shown = await bot.press("✅ OK, skip the country")
            assert "safety check" in shown[-1].plain_text
            await bot.press("▫️ Chest pain or breathless")
            shown = await bot.press("Done ➡️")
            assert "Get emergency help now" in shown[-1].plain_text
        finally:
            await bot.stop()
        api.assert_no_violations()
