"""Localisation: the catalogues in cogs/locales match what the bot registers and says.

The catalogue tests need no Discord: they read the command tree the way discord.py
does at sync time (a recording translator) and the `tr(...)` calls in the cogs'
source (what those texts read like: tests/bot/test_localised_texts.py). The end-to-end
tests check what the fake Discord received at registration, and that a member is
answered in their client's language; two of them dream (one quick dream each): a
German member's dream goes and arrives in German, and a French member over the daily
limit is told so in French. A German admin's `/dreamadmin` needs no dream.
"""

from __future__ import annotations

import ast
import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import Path

import discord
import pytest
from discord import app_commands

from bot import EXTENSIONS, Settings, create_bot
from cogs.common import ordinal
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
