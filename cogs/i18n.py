"""Translations: the message catalogues in `cogs/locales/*.toml`, for Discord and for replies.

A catalogue is plain TOML a translator edits without reading code, keyed by the
English text itself, so the code stays readable English and a missing
translation simply falls back to it. One file per Discord locale (`de.toml`,
`fr.toml`, `es-ES.toml`, ...); Latin American Spanish (`es-419`) reads Spain's.

- `[commands]`: command, option and choice names and descriptions. discord.py asks
  `CatalogueTranslator` for each of them when it syncs the command tree, and
  sends them to Discord as `name_localizations` / `description_localizations`.
- `[replies]`: what members are told, as `str.format` templates: `tr(locale, text, ...)`.
- `[ordinals]`: how "1st" reads in this language (`default`, or a number as key).

As an extension (`bot.py` loads it first), this module sets the bot's translator, so
`setup_hook`'s sync sends every localisation. Everything is checked when the catalogues
are loaded (once, when the translator is set), so a bad entry is one clear error at
start-up naming the file and the key, not a refused sync from Discord or a reply that
fails for one language only.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from string import Formatter
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

if TYPE_CHECKING:
    from discord.ext import commands

LOCALES_DIR = Path(__file__).with_name("locales")
#: Discord's rule for slash command, group and option names (lowercase as well).
NAME = re.compile(r"^[-_'\w]{1,32}$")
TEXT_LIMIT = 100  # descriptions and choice names
MENU_NAME_LIMIT = 32  # a context menu's name may have spaces and capitals, not more
#: Discord locales that read another's catalogue.
ALIASES = {"es-419": "es-ES"}
DISCORD_LOCALES = frozenset(locale.value for locale in discord.Locale)
SECTIONS = ("commands", "replies", "ordinals")
NAME_LOCATIONS = frozenset(
    {
        app_commands.TranslationContextLocation.command_name,
        app_commands.TranslationContextLocation.group_name,
        app_commands.TranslationContextLocation.parameter_name,
    }
)

LocaleLike = discord.Locale | str | None


class CatalogueError(ValueError):
    """A catalogue entry that Discord would refuse or a reply could not use; the message
    names the file and the key."""


@dataclass(frozen=True)
class Catalogue:
    """One language's translations, checked."""

    locale: str
    commands: dict[str, str] = field(default_factory=dict)
    replies: dict[str, str] = field(default_factory=dict)
    ordinals: dict[str, str] = field(default_factory=dict)


def is_name(text: str) -> bool:
    """Whether `text` is a valid slash command or option name: the shape of a name key."""
    return bool(NAME.match(text)) and text == text.lower()


def placeholders(template: str) -> set[str]:
    """The `{names}` a `str.format` template uses (`{job.id}` counts as `job`)."""
    fields = (name for _, name, _, _ in Formatter().parse(template) if name is not None)
    return {re.split(r"[.\[]", name, maxsplit=1)[0] for name in fields}


def load_catalogue(path: Path) -> Catalogue:
    """Read and check one catalogue file; raises `CatalogueError` naming what is wrong."""
    if path.stem not in DISCORD_LOCALES:
        raise CatalogueError(f"{path.name}: {path.stem!r} is not a Discord locale")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise CatalogueError(f"{path.name}: not valid TOML ({error})") from None
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise CatalogueError(f"{path.name}: unknown section(s) {sorted(unknown)}; use {SECTIONS}")
    sections = {name: _strings(path, name, data.get(name, {})) for name in SECTIONS}
    for key, value in sections["commands"].items():
        _check_command_text(path, key, value)
    for key, value in sections["replies"].items():
        _check_reply(path, f"[replies] {key!r}", value, placeholders(key))
    for key, value in sections["ordinals"].items():
        _check_ordinal(path, key, value)
    return Catalogue(path.stem, **sections)


def _strings(path: Path, section: str, table: Any) -> dict[str, str]:
    if not isinstance(table, dict):
        raise CatalogueError(f"{path.name}: [{section}] must be a table of strings")
    for key, value in table.items():
        if not isinstance(value, str) or not value.strip():
            raise CatalogueError(f"{path.name}: [{section}] {key!r} must be a non-empty string")
    return dict(table)


def _check_command_text(path: Path, key: str, value: str) -> None:
    where = f"{path.name}: [commands] {key!r} = {value!r}"
    if is_name(key) and not is_name(value):
        raise CatalogueError(
            f"{where}: a name is 1-32 lowercase letters, digits, '-', '_' or \"'\", no spaces"
        )
    if len(value) > TEXT_LIMIT:
        raise CatalogueError(f"{where}: longer than {TEXT_LIMIT} characters")


def _check_reply(path: Path, where: str, value: str, expected: set[str]) -> None:
    try:
        used = placeholders(value)
    except ValueError as error:  # a lone { or }
        raise CatalogueError(f"{path.name}: {where}: {error} (write {{{{ for a brace)") from None
    if used != expected:
        raise CatalogueError(
            f"{path.name}: {where} uses {sorted(used)}; the English uses {sorted(expected)}"
        )


def _check_ordinal(path: Path, key: str, value: str) -> None:
    if key != "default" and not key.isdigit():
        raise CatalogueError(f"{path.name}: [ordinals] {key!r}: keys are 'default' or numbers")
    _check_reply(path, f"[ordinals] {key!r}", value, {"n"})


@cache
def catalogues() -> dict[str, Catalogue]:
    """Every catalogue by its locale, loaded and checked once."""
    found = {path.stem: load_catalogue(path) for path in sorted(LOCALES_DIR.glob("*.toml"))}
    for locale, catalogue in found.items():
        if catalogue.ordinals and "default" not in catalogue.ordinals:
            raise CatalogueError(f"{locale}.toml: [ordinals] needs a 'default'")
    return found


def locale_code(locale: LocaleLike) -> str | None:
    """`discord.Locale.german` or "de" -> "de"; None stays None."""
    if locale is None:
        return None
    return locale.value if isinstance(locale, discord.Locale) else str(locale)


def catalogue_for(locale: LocaleLike) -> Catalogue | None:
    """The catalogue a member with this locale reads, or None for English."""
    code = locale_code(locale)
    if code is None:
        return None
    return catalogues().get(ALIASES.get(code, code))


def tr(locale: LocaleLike, text: str, /, **values: Any) -> str:
    """`text` (an English reply template) in the member's language, with `values` filled in.

    An unknown locale or a reply nobody has translated yet reads in English.
    """
    catalogue = catalogue_for(locale)
    template = catalogue.replies.get(text, text) if catalogue else text
    return template.format(**values)


def local_ordinal(locale: LocaleLike, n: int) -> str | None:
    """`n` as a place in the member's language ("1.", "1er", "1番目"); None: English's."""
    catalogue = catalogue_for(locale)
    if catalogue is None or not catalogue.ordinals:
        return None
    template = catalogue.ordinals.get(str(n), catalogue.ordinals["default"])
    return template.format(n=n)


class CatalogueTranslator(app_commands.Translator):
    """Answers discord.py's questions at sync time from the `[commands]` sections."""

    async def load(self) -> None:
        catalogues()  # a bad catalogue stops the bot at start-up, before anything is synced

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        catalogue = catalogue_for(locale)
        if catalogue is None:
            return None
        translation = catalogue.commands.get(string.message)
        if translation is not None and context.location in NAME_LOCATIONS:
            _check_name(translation, string, locale, context)
        return translation


def _check_name(
    translation: str,
    string: app_commands.locale_str,
    locale: discord.Locale,
    context: app_commands.TranslationContextTypes,
) -> None:
    """The name rules by where the name is: a context menu's are looser than a command's."""
    if isinstance(context.data, app_commands.ContextMenu):
        valid = 1 <= len(translation) <= MENU_NAME_LIMIT
    else:
        valid = is_name(translation)
    if not valid:
        raise app_commands.TranslationError(
            f"{locale.value}: {translation!r} is not a valid name for {string.message!r}",
            string=string,
            locale=locale,
            context=context,
        )


async def setup(bot: commands.Bot) -> None:
    """An extension so that `bot.py` needs no import from `cogs/` (the layers point down)."""
    await bot.tree.set_translator(CatalogueTranslator())


async def teardown(bot: commands.Bot) -> None:
    await bot.tree.set_translator(None)
