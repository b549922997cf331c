"""Localisation: the catalogues in cogs/locales match what the bot registers and says.

The catalogue tests need no Discord: they read the command tree the way discord.py
does at sync time (a recording translator) and the `tr(...)` calls in the cogs'
source. The service's refusals, the scheduler's final words and its answers to a
cancel read, in English, exactly as the service wrote them; so do Info, the lines of
`/dreams` and `/dreamadmin`'s settings and stats, as they read before they were
translated. The end-to-end tests check what the fake Discord received at
registration, and that a member is answered in their client's language; two of them
dream (one quick dream each): a German member's dream goes and arrives in German, and
a French member over the daily limit is told so in French. A German admin's
`/dreamadmin` needs no dream.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import re
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import discord
import pytest
from discord import app_commands

from bot import EXTENSIONS, Settings, create_bot
from cogs.admin import describe_settings, stats_text
from cogs.common import ordinal
from cogs.dream_info import info_message, info_text
from cogs.history import entry_line
from cogs.i18n import (
    LOCALES_DIR,
    MENU_NAME_LIMIT,
    NAME_LOCATIONS,
    TEXT_LIMIT,
    CatalogueError,
    CatalogueTranslator,
    catalogues,
    is_name,
    load_catalogue,
    placeholders,
    tr,
)
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
from tests.bot.test_dream import DREAM, png, world
from tests.bot.test_dream_more import private_reply
from tests.bot.test_errors import NoEngine
from tests.bot.test_quotas import admin_sets
from tests.bot.test_result_buttons import QUICK, delivered
from tests.conftest import REPO
from tests.fakediscord import MANAGE_GUILD, FakeDiscord
from tests.fakediscord.commands import check_localizations
from tests.fakediscord.validation import ApiError

__all__ = ["world"]  # a pytest fixture, imported for its side effect

LOCALES = ("de", "fr", "es-ES", "ja")
PLACEHOLDER_DESCRIPTION = "…"  # discord.py's description of an option that has none


@dataclass(frozen=True)
class Registered:
    """One string discord.py asks the translator for when it syncs the tree."""

    text: str
    kind: str  # "name" (slash rule), "menu" (a context menu's name) or "text"


class Recorder(app_commands.Translator):
    """Writes down every string discord.py would translate; translates none."""

    def __init__(self) -> None:
        self.seen: set[Registered] = set()

    async def translate(self, string, locale, context) -> str | None:
        if context.location in NAME_LOCATIONS:
            menu = isinstance(context.data, app_commands.ContextMenu)
            kind = "menu" if menu else "name"
        else:
            kind = "text"
        self.seen.add(Registered(string.message, kind))
        return None


async def _registered_strings(db_path: Path) -> set[Registered]:
    bot = create_bot(Settings(token="t", weights="random", db_path=str(db_path)), NoEngine())
    await bot.open_stores()
    try:
        for extension in EXTENSIONS:
            await bot.load_extension(extension)
        recorder = Recorder()
        for command in bot.tree.get_commands():  # every type: slash and context menus
            await command.get_translated_payload(bot.tree, recorder)
    finally:
        await bot.close()
    return {r for r in recorder.seen if r.text != PLACEHOLDER_DESCRIPTION}


@pytest.fixture(scope="module")
def registered(tmp_path_factory) -> set[Registered]:
    return asyncio.run(_registered_strings(tmp_path_factory.mktemp("l10n") / "bot.db"))


def _reply_texts() -> set[str]:
    """The English text of every `tr(locale, "text", ...)` in the cogs; all are literals."""
    found = set()
    for path in sorted((REPO / "cogs").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "tr":
                text = node.args[1] if len(node.args) > 1 else None
                assert isinstance(text, ast.Constant) and isinstance(text.value, str), (
                    f"{path.name}:{node.lineno}: tr() needs its English text as a literal, "
                    "so that this test can find it"
                )
                found.add(text.value)
    return found


def test_every_locale_has_a_catalogue():
    assert set(LOCALES) <= set(catalogues()), sorted(catalogues())


@pytest.mark.parametrize("locale", LOCALES)
def test_catalogue_translates_exactly_the_registered_strings(locale, registered):
    keys = set(catalogues()[locale].commands)
    texts = {r.text for r in registered}
    missing, stale = sorted(texts - keys), sorted(keys - texts)
    assert not missing, f"cogs/locales/{locale}.toml [commands]: add translations for {missing}"
    assert not stale, f"cogs/locales/{locale}.toml [commands]: nothing registers {stale}"


@pytest.mark.parametrize("locale", LOCALES)
def test_registered_names_and_texts_keep_discords_rules(locale, registered):
    commands = catalogues()[locale].commands
    for item in registered:
        translated = commands[item.text]
        if item.kind == "name":
            assert is_name(item.text) and is_name(translated), (item, translated)
        limit = MENU_NAME_LIMIT if item.kind == "menu" else TEXT_LIMIT
        assert 1 <= len(translated) <= limit, (item, translated)


@pytest.mark.parametrize("locale", LOCALES)
def test_catalogue_translates_exactly_the_replies_the_cogs_send(locale):
    replies = catalogues()[locale].replies
    used = _reply_texts()
    missing, stale = sorted(used - set(replies)), sorted(set(replies) - used)
    assert not missing, f"cogs/locales/{locale}.toml [replies]: add translations for {missing}"
    assert not stale, f"cogs/locales/{locale}.toml [replies]: no cog says {stale}"
    for english, translated in replies.items():
        assert placeholders(translated) == placeholders(english), (english, translated)


def test_tr_reads_the_members_language_and_falls_back_to_english():
    text = "{waiting} waiting in all, {here} in this server, {running} dreaming now."
    german = tr(discord.Locale.german, text, waiting=3, here=1, running=2)
    assert german == "3 warten insgesamt, 1 auf diesem Server, 2 träumen gerade."
    assert tr("de", text, waiting=3, here=1, running=2) == german
    assert tr(discord.Locale.american_english, text, waiting=3, here=1, running=2) == (
        "3 waiting in all, 1 in this server, 2 dreaming now."
    )
    spanish = catalogues()["es-ES"].replies["Pick a preset"]
    assert tr(discord.Locale.latin_american_spanish, "Pick a preset") == spanish
    assert tr("ko", "Pick a preset") == "Pick a preset"  # no Korean catalogue yet
    assert tr("de", "Not in any catalogue: {x}", x=1) == "Not in any catalogue: 1"


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


@pytest.mark.asyncio(loop_scope="function")
async def test_the_translator_answers_from_the_commands_section():
    translator = CatalogueTranslator()
    await translator.load()
    where = app_commands.TranslationContextLocation
    name = app_commands.TranslationContext(location=where.command_name, data=None)
    text = app_commands.TranslationContext(location=where.command_description, data=None)
    dream = app_commands.locale_str("dream")
    assert await translator.translate(dream, discord.Locale.german, name) == "träumen"
    assert await translator.translate(dream, discord.Locale.latin_american_spanish, name) == (
        "soñar"
    )
    assert await translator.translate(dream, discord.Locale.korean, name) is None
    unknown = app_commands.locale_str("Not a registered string")
    assert await translator.translate(unknown, discord.Locale.japanese, text) is None


def test_places_in_line_follow_the_language():
    assert [ordinal(n) for n in (1, 2, 3, 11, 21)] == ["1st", "2nd", "3rd", "11th", "21st"]
    assert ordinal(2, "en-GB") == "2nd"
    assert (ordinal(1, "fr"), ordinal(2, "fr")) == ("1er", "2e")
    assert (ordinal(3, "de"), ordinal(3, "es-419"), ordinal(3, "ja")) == ("3.", "3.º", "3番目")


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("de.toml", '[commands]\n"dream" = "Träumen jetzt"\n', "'dream' = 'Träumen jetzt'"),
        ("de.toml", '[commands]\n"A description" = "' + "y" * 101 + '"\n', "longer than 100"),
        (
            "fr.toml",
            '[replies]\n"Dream {filename}?" = "Rêver {fichier} ?"\n',
            "uses ['fichier']; the English uses ['filename']",
        ),
        ("fr.toml", '[replies]\n"{n} left" = "{n} restants}"\n', "Single '}'"),
        ("ja.toml", "[replys]\n", "unknown section(s) ['replys']"),
        ("ja.toml", '[ordinals]\nfirst = "{n}"\n', "'first': keys are 'default' or numbers"),
        ("es.toml", "", "'es' is not a Discord locale"),
        ("de.toml", "[commands\n", "not valid TOML"),
    ],
)
def test_a_bad_catalogue_entry_fails_at_load_naming_file_and_key(tmp_path, name, text, words):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogueError, match="^" + name.replace(".", r"\.")) as raised:
        load_catalogue(path)
    assert words in str(raised.value)


def test_catalogues_are_plain_toml_files_beside_the_cogs():
    assert LOCALES_DIR == REPO / "cogs" / "locales"
    assert {path.stem for path in LOCALES_DIR.glob("*.toml")} == set(catalogues())


def _option(name: str, **localized: str) -> dict:
    return {"type": 3, "name": name, "description": "d", "name_localizations": localized}


@pytest.mark.parametrize(
    ("command", "field"),
    [
        ({"name": "dream", "name_localizations": {"es": "soñar"}}, "0.name_localizations.es"),
        ({"name": "dream", "name_localizations": {"de": "Träumen"}}, "0.name_localizations.de"),
        (
            {"name": "dream", "description_localizations": {"fr": "x" * 101}},
            "0.description_localizations.fr",
        ),
        (
            {"name": "dream", "options": [_option("zoom", ja="ズーム"), _option("z", ja="ズーム")]},
            "0.options.name_localizations.ja",
        ),
        ({"name": "A menu", "type": 3, "name_localizations": {"de": "x" * 33}}, "0"),
    ],
)
def test_the_fake_refuses_what_discord_refuses_in_localisations(command, field):
    with pytest.raises(ApiError) as raised:
        check_localizations([{"description": "d", **command}])
    node = raised.value.body["errors"]
    for part in field.split("."):
        node = node[part]
    assert raised.value.status == 400 and node


# -- through the fake Discord ----------------------------------------------------------


async def _started(fake: FakeDiscord, tmp_path: Path):
    settings = Settings(token="fake-token", weights="random", db_path=str(tmp_path / "b.db"))
    bot = create_bot(settings, NoEngine())
    await fake.start_bot(bot)
    return bot


@pytest.mark.e2e
@pytest.mark.asyncio(loop_scope="function")
async def test_registration_carries_the_localisations(tmp_path):
    async with FakeDiscord() as fake:
        await _started(fake, tmp_path)
        [put] = [c for c in fake.calls if c.method == "PUT" and c.path.endswith("/commands")]
        sent = {(cmd["name"], cmd.get("type", 1)): cmd for cmd in put.json}
        dream = sent[("dream", 1)]
        nodes = [dream, *dream["options"]]
        for node in nodes:
            for field in ("name_localizations", "description_localizations"):
                assert set(LOCALES) | {"es-419"} <= set(node[field]), (node["name"], field)
        assert dream["name_localizations"]["de"] == "träumen"
        assert dream["name_localizations"]["es-419"] == dream["name_localizations"]["es-ES"]
        fmt = next(option for option in dream["options"] if option["name"] == "format")
        assert {c["name"]: c["name_localizations"]["ja"] for c in fmt["choices"]} == {
            "mp4": "mp4",
            "gif": "gif",
        }
        menu = sent[("Dream this image", 3)]
        assert menu["name_localizations"]["fr"] == "Rêver cette image"
        # The fake keeps them as Discord does.
        kept = next(cmd for cmd in fake.commands() if cmd["name"] == "dream")
        assert kept["name_localizations"] == dream["name_localizations"]
        assert kept["options"][0]["description_localizations"]["ja"] == (
            "ドリームする画像（PNG、JPEG、WebP、GIF）"
        )


@pytest.mark.e2e
@pytest.mark.asyncio(loop_scope="function")
async def test_members_are_answered_in_their_clients_language(tmp_path):
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Kunst")
        hans = fake.add_member(guild, "hans", locale="de")
        ann = fake.add_member(guild, "ann", locale="en-US")
        yuki = fake.add_member(guild, "yuki", locale="ja")
        await _started(fake, tmp_path)

        german = (await (await fake.slash(guild, hans, "queue")).wait_callback()).data
        assert german["content"] == (
            "Du hast keine Träume in der Warteschlange oder in Arbeit.\n\n"
            "0 warten insgesamt, 0 auf diesem Server, 0 träumen gerade."
        )
        none_de = tr("de", "You have no dreams queued or running.")
        assert german["content"].startswith(none_de)

        english = (await (await fake.slash(guild, ann, "queue")).wait_callback()).data
        assert english["content"] == (
            "You have no dreams queued or running.\n\n"
            "0 waiting in all, 0 in this server, 0 dreaming now."
        )

        japanese = (await (await fake.slash(guild, yuki, "cancel")).wait_callback()).data
        assert japanese["content"] == "ここで待機中または実行中のドリームはありません。"

        note = fake.add_message(guild.text_channel, ann, "no picture here")
        menu = await fake.context_menu(guild, hans, "Dream this image", note)
        assert (await menu.wait_callback()).data["content"] == tr(
            "de", "That message has no image attached. Use it on a message with a picture."
        )


@pytest.mark.e2e
@pytest.mark.asyncio(loop_scope="function")
async def test_a_german_members_dream_goes_and_arrives_in_german(world, cat_photo):
    fake, _bot, guild = world
    hans = fake.add_member(guild, "hans", locale="de")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    inter = await fake.slash(guild, hans, "dream", {"image": image, **QUICK})
    result = await inter.wait_original(delivered, timeout=DREAM)
    seen = [version.get("content") or "" for version in result.history]
    what = "**one-octave**"
    dreaming = "🌀 " + tr("de", "Dreaming {what}", what=what)  # its progress starts so too
    queued = "🌙 " + tr("de", "Queued {what}: {place}.", what=what, place=tr("de", "next in line"))
    assert dreaming == "🌀 Traum läuft: **one-octave**"
    assert any(text.startswith((dreaming, queued)) for text in seen), seen
    assert not any("Dreaming" in text or "Queued" in text for text in seen), seen
    embed = result.embeds[0]
    assert embed["title"] == "Traum: one-octave"
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert {"Modell", "Größe", "Dauer"} <= set(fields), fields
    assert "iterations=1" in fields["Geändert gegenüber der Voreinstellung"]
    assert embed["footer"]["text"].startswith("Angefragt von ")


@pytest.mark.e2e
@pytest.mark.asyncio(loop_scope="function")
async def test_a_french_member_over_the_daily_limit_is_told_in_french_and_when(world, cat_photo):
    fake, _bot, guild = world
    ada = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
    marie = fake.add_member(guild, "marie", locale="fr")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    await admin_sets(fake, guild, ada, "daily-limit", {"value": 1})
    first = await fake.slash(guild, marie, "dream", {"image": image, **QUICK})
    assert (await first.wait_original(delivered, timeout=DREAM)).embeds[0]["title"] == (
        "Rêve : one-octave"
    )
    refused = await fake.slash(guild, marie, "dream", {"image": image, **QUICK})
    text = await private_reply(refused)
    when = int(re.search(r"<t:(\d+):R>", text).group(1))
    assert text == (
        f"Tu as eu ton 1 rêve pour aujourd'hui ici ; le prochain pourra commencer <t:{when}:R>."
    )
    assert time.time() + 23.9 * 3600 < when <= time.time() + 24 * 3600 + 2


@pytest.mark.e2e
@pytest.mark.asyncio(loop_scope="function")
async def test_a_german_admin_is_answered_in_german(tmp_path):
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Kunst")
        ada = fake.add_member(guild, "ada", permissions=MANAGE_GUILD, locale="de")
        await _started(fake, tmp_path)
        said, *rows = (await admin_sets(fake, guild, ada, "daily-limit", {"value": 3})).split("\n")
        assert said == "Jedes Mitglied darf jetzt in 24 Stunden 3 Träume starten."
        assert "**Tageslimit**: 3" in rows and "**Abklingzeit**: ohne (Standard)" in rows, rows
        assert rows[-1] == "**Kanäle**: überall (Standard)"
        stats = await admin_sets(fake, guild, ada, "stats", {})
        assert stats.startswith("**Träume diese Woche** (UTC-Tage): 0\n"), stats
        cancel = await fake.slash(guild, ada, "cancel", {"job": "nope"})
        assert (await cancel.wait_callback()).data["content"] == (
            "Es gibt keinen Traum mit dieser ID. /warteschlange zeigt deine."
        )
