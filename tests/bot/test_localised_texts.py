"""What the bot writes, read in every language: refusals, the scheduler's last words,
cancel answers, Info, the lines of `/dreams`, `/dreamadmin`'s settings and stats.

In English each reads exactly as it did before it was translated (the service's own
text where the service wrote it); in every other catalogue's language it reads
otherwise. No Discord, no engine: the renderers are called with typed data.
"""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from cogs.admin import describe_settings, stats_text
from cogs.dream_info import info_message, info_text
from cogs.history import entry_line
from cogs.refusals import WARNING, cancel_reply, cancel_text, refusal_text, service_message
from dream_engine.core.params import DreamParams
from dream_engine.errors import UserError
from dream_engine.motion.spec import MotionSpec
from dream_engine.service.guild_settings import GuildSettings
from dream_engine.service.history import DreamEntry, WeekStats
from dream_engine.service.queue import (
    CancelOutcome,
    GuildQueueFull,
    QueueClosed,
    QueueFull,
    UserLimitReached,
)
from dream_engine.service.quotas import QuotaExceeded
from dream_engine.service.scheduler import (
    ALREADY_POSTING,
    CANCELLED_RUNNING,
    CANCELLED_WAITING,
    NOT_SAVED,
    POSTING_FAILED,
    SAVED_IMAGE_MISSING,
)

LOCALES = ("de", "fr", "es-ES", "ja")


WHEN = 1_800_000_000.5  # a refusal's "until"
REFUSALS = [
    QuotaExceeded("daily", 1, WHEN),
    QuotaExceeded("daily", 3, WHEN),
    QuotaExceeded("cooldown", 60, WHEN),
    QueueFull(1),
    QueueFull(40),
    GuildQueueFull(5, 5),
    GuildQueueFull(1, 1, in_dm=True),
    GuildQueueFull(0, 0),
    GuildQueueFull(0, 0, in_dm=True),
    UserLimitReached(1, 1),
    UserLimitReached(2, 2, in_dm=True),
    UserLimitReached(3, 1),  # an admin lowered the limit below what the member holds
    UserLimitReached(3, 2, in_dm=True),
    UserLimitReached(0, 0),
    UserLimitReached(0, 0, in_dm=True),
    QueueClosed(),
]


@pytest.mark.parametrize("error", REFUSALS, ids=lambda error: type(error).__name__)
def test_the_services_refusals_read_as_it_wrote_them_in_english_and_translated_elsewhere(error):
    assert refusal_text(error, "en-US") == str(error)
    assert refusal_text(error, None) == str(error)
    for locale in LOCALES:
        translated = refusal_text(error, locale)
        assert translated != str(error), (locale, translated)
        if isinstance(error, QuotaExceeded):  # Discord shows the time in the member's words
            assert f"<t:{int(WHEN) + 1}:R>" in translated


def test_a_refusal_nobody_translated_is_shown_as_the_service_wrote_it():
    assert refusal_text(UserError("layers: no layer mixed99."), "de") == "layers: no layer mixed99."


@pytest.mark.parametrize(
    "english",
    [
        NOT_SAVED,
        WARNING + SAVED_IMAGE_MISSING,  # a `UserError` as the job runs: "⚠️ " + its text
        CANCELLED_RUNNING,
        CANCELLED_WAITING,
        POSTING_FAILED,
    ],
)
def test_the_schedulers_final_words_are_said_in_the_members_language(english):
    assert service_message(english, "en-US") == english
    for locale in LOCALES:
        assert service_message(english, locale) not in (english, ""), locale
    assert service_message("⚠️ the engine said so", "ja") == "⚠️ the engine said so"


def test_the_answer_to_a_cancel_reads_as_the_service_wrote_it_in_english():
    for outcome in CancelOutcome:
        assert cancel_text(outcome, "en-US") == outcome.message
        assert cancel_reply(outcome.message, None) == outcome.message
        for locale in LOCALES:
            assert cancel_text(outcome, locale) != outcome.message, (locale, outcome)
            assert cancel_reply(outcome.message, locale) == cancel_text(outcome, locale)
    assert cancel_reply(ALREADY_POSTING, "en-US") == ALREADY_POSTING
    finished = CancelOutcome.ALREADY_FINISHED
    for locale in LOCALES:
        said = cancel_reply(ALREADY_POSTING, locale)
        assert said not in (ALREADY_POSTING, cancel_text(finished, locale)), locale
    assert cancel_reply("Anything else.", "de") == "Anything else."


FINISHED = 1_796_299_200.0
ENTRY = DreamEntry(
    job_id="j", guild_id=1, channel_id=10, message_id=100, user_id=7, preset="balanced",
    params=DreamParams(layers={"mixed3": 0.5, "mixed5": 1.0}, seed=4, jitter=16),
    changed={"seed": 4, "model": "inceptionv3"}, source_id=3, guide_source_id=None,
    guide_name=None, motion=None, variants=0, gallery=False, animate=False, spoiler=False,
    max_side=512, precision="mixed_bfloat16", width=512, height=341,
    accepted_at=FINISHED - 30, started_at=FINISHED - 20, finished_at=FINISHED, run_seconds=18.5,
)  # fmt: skip
PARAMETERS = (
    "Parameters: layers=mixed3=0.5,mixed5=1, step=0.01, octaves=3, octave_scale=1.4, "
    "iterations=20, max_loss=10, seed=4, jitter=16, lap_levels=0, scale_jitter=0, "
    "rotate_jitter=0"
)
INFO = [
    "**A dream** from preset **balanced**, model **inceptionv3**, precision **mixed_bfloat16**",
    "512×341 px (longest side at most 512), ran 18s after 10s in line, finished <t:1796299200:f>",
    PARAMETERS,
    "Changed from the preset: seed",
]


def test_info_reads_as_before_in_english_and_in_the_readers_words_elsewhere():
    line = info_text(ENTRY, "random")[1]
    english = "\n".join([*INFO, "Make it again (INPUT: the same picture):", f"```sh\n{line}\n```"])
    assert info_message(ENTRY, "random", "en-US") == (english, None)
    assert info_message(ENTRY, "random") == (english, None)
    for locale in LOCALES:
        text, apart = info_message(ENTRY, "random", locale)
        assert apart is None and text != english, locale
        assert PARAMETERS.removeprefix("Parameters: ") in text  # names and values as typed
        assert "<t:1796299200:f>" in text and text.endswith(f"```sh\n{line}\n```")


@pytest.mark.parametrize(
    ("changes", "first"),
    [
        (
            {"variants": 4, "precision": ""},
            "**A comparison of 4 variants** from preset **balanced**, model **inceptionv3**, "
            "precision **unknown**",
        ),
        ({"motion": MotionSpec("zoom", frames=12)}, "**A zoom of 12 frames** from preset"),
        ({"motion": MotionSpec("clip", frames=30)}, "**A clip of 30 frames** from preset"),
    ],
)
def test_infos_first_words_say_what_the_dream_was(changes, first):
    entry = dataclasses.replace(ENTRY, **changes)
    english, _ = info_message(entry, "random", "en-US")
    assert english.startswith(first)
    if entry.variants:
        note = "The command makes the comparison's base dream; /compare makes the grid."
        assert f"\n{note}\n" in english
    for locale in LOCALES:
        head = info_message(entry, "random", locale)[0].split("\n", 1)[0]
        assert head != english.split("\n", 1)[0], locale
        assert head.startswith("**") and "**balanced**" in head, head


def test_an_info_too_long_for_a_message_sends_its_command_apart_in_any_language():
    channels = {f"mixed4:{n}": 1.0 for n in range(300)}
    entry = dataclasses.replace(ENTRY, params=DreamParams(layers={}, channels=channels))
    text, line = info_message(entry, "random", "en-US")
    assert line is not None and text.endswith(
        "\nMake it again: the command is in the file (too long for a message)."
    )
    for locale in LOCALES:
        translated, apart = info_message(entry, "random", locale)
        assert apart == line and translated.split("\n")[-1] != text.split("\n")[-1], locale


LINK = "https://discord.com/channels/1/10/100"


@pytest.mark.parametrize(
    ("changes", "english"),
    [
        ({}, f"<t:1796299200:R> **balanced**, 512×341 [result]({LINK})"),
        (
            {"variants": 4},
            f"<t:1796299200:R> a comparison of 4 (**balanced**), 512×341 [result]({LINK})",
        ),
        (
            {"motion": MotionSpec("zoom", frames=12), "message_id": None},
            "<t:1796299200:R> a zoom of 12 frames (**balanced**), 512×341",
        ),
        (
            {"motion": MotionSpec("clip", frames=30)},
            f"<t:1796299200:R> a clip of 30 frames (**balanced**), 512×341 [result]({LINK})",
        ),
    ],
)  # fmt: skip
def test_a_line_of_dreams_reads_as_before_in_english_and_translated_elsewhere(changes, english):
    entry = dataclasses.replace(ENTRY, **changes)
    assert entry_line(entry, "en-US") == entry_line(entry) == english
    for locale in LOCALES:
        translated = entry_line(entry, locale)
        assert translated != english and translated.startswith("<t:1796299200:R> "), locale
        assert ("](" + LINK + ")" in translated) == (entry.message_id is not None)


WEEK = WeekStats(
    [(date(2026, 12, day), day % 3) for day in range(1, 8)], 12.0, 65.0, [("balanced", 3), ("x", 1)]
)
WEEK_TEXT = [
    "**Dreams this week** (UTC days): 7",
    "`Tue 01 Dec` `██████      ` 1",
    "`Wed 02 Dec` `████████████` 2",
    "`Thu 03 Dec` `            ` 0",
    "`Fri 04 Dec` `██████      ` 1",
    "`Sat 05 Dec` `████████████` 2",
    "`Sun 06 Dec` `            ` 0",
    "`Mon 07 Dec` `██████      ` 1",
    "Median wait in line 12s, median dream 1m 05s.",
    "Most used presets: balanced (3), x (1)",
]


def test_the_weeks_stats_read_as_before_in_english_and_translated_elsewhere():
    assert stats_text(WEEK, "en-US") == stats_text(WEEK) == "\n".join(WEEK_TEXT)
    for locale in LOCALES:
        lines = stats_text(WEEK, locale).split("\n")
        assert lines[1:8] == WEEK_TEXT[1:8], locale  # the bars and their days as they were
        for said, english in zip(lines[:1] + lines[8:], WEEK_TEXT[:1] + WEEK_TEXT[8:], strict=True):
            assert said != english, locale
        assert "1m 05s" in lines[8] and "balanced (3), x (1)" in lines[9]


SETTINGS = [
    GuildSettings(1, 10, 2, 1024),
    GuildSettings(
        1, 10, 2, 800, clip_megapixels=3, daily_limit=5, cooldown=30, spoiler=1,
        exempt_roles=frozenset({66, 5}), channels=frozenset({3, 20}),
        overridden=frozenset(
            {"queue_size", "max_side", "clip_megapixels", "daily_limit", "cooldown", "spoiler",
             "channels"}
        ),
    ),
]  # fmt: skip


@pytest.mark.parametrize("settings", SETTINGS, ids=["defaults", "chosen"])
def test_the_settings_list_reads_as_the_service_describes_it_in_english(settings):
    english = "\n".join(f"**{name}**: {value}" for name, value in settings.describe())
    assert describe_settings(settings, "en-US") == describe_settings(settings) == english
    for locale in LOCALES:
        translated = describe_settings(settings, locale).split("\n")
        assert len(translated) == len(english.split("\n")), locale
        for said, line in zip(translated, english.split("\n"), strict=True):
            assert said != line and said.startswith("**"), (locale, said)
        if settings.channels:
            assert translated[-2].endswith("<@&5> <@&66>") and translated[-1].endswith(
                "<#3>, <#20>"
            )
