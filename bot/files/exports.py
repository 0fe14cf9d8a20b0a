"""Build one export file from a person's export dict: the entry point the worker runs."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

KINDS = ("pdf", "zip", "json", "named")


def build_file(
    kind: str,
    data: dict[str, Any],
    *,
    since: date | None,
    zone: str,
    name: str | None,
    today: date,
) -> tuple[bytes, str, str]:
    """The chosen export as (bytes, file name, caption), in the person's language."""
    # Heavy libraries load here, in the worker that builds files, never in the bot's loop.
    from bot.files.bundle import build_zip, within  # noqa: PLC0415
    from bot.files.fhir import fhir_bundle  # noqa: PLC0415
    from bot.files.language import documents, lang_of  # noqa: PLC0415
    from bot.files.pdf import doctor_pdf  # noqa: PLC0415

    words = documents(lang_of(data))
    stamp = today.strftime("%Y%m%d")
    if kind == "json":
        text = json.dumps(within(data, since=since, zone=zone), ensure_ascii=False, indent=2)
        return (
            text.encode("utf-8"),
            f"nightlegs-export-{stamp}.json",
            words.text("telegram", "caption_json"),
        )
    if kind == "zip":
        bundle = build_zip(
            data,
            since=since,
            zone=zone,
            name=None,
            fhir=fhir_bundle(within(data, since=since, zone=zone)),
        )
        return bundle, f"nightlegs-export-{stamp}.zip", words.text("telegram", "caption_zip")
    return (
        doctor_pdf(data, since=since, zone=zone, name=name, today=today),
        f"nightlegs-doctor-summary-{stamp}.pdf",
        words.text("telegram", "caption_pdf"),
    )


def build_chart(summary: Any, lang: str = "en") -> bytes:
    """The diary chart as PNG bytes, its words in `lang`."""
    from bot.files.chart import render_chart  # noqa: PLC0415

    return render_chart(summary, lang)
