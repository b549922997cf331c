"""Helpers every cog shares: wording, permission checks, preset choices."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import discord
from discord import app_commands

from cogs.i18n import LocaleLike, local_ordinal, tr
from dream_engine.core.classes import has_classes, search
from dream_engine.core.presets import list_presets

if TYPE_CHECKING:
    from bot import DreamBot
    from dream_engine.motion.spec import MotionSpec

BAR_WIDTH = 12

T = TypeVar("T")


def usable_everywhere(command: T) -> T:
    """Mark a command installable to a member's account as well, and usable in any chat:
    DMs, and servers the bot is not in (`server_of` is None there). Commands without it are
    the bot's own (the tree's defaults: installed to servers, used there or in its DMs)."""
    command = app_commands.allowed_installs(guilds=True, users=True)(command)
    return app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)(command)


def ordinal(n: int, locale: LocaleLike = None) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st...; "1." or "1er" where the member's catalogue says."""
    local = local_ordinal(locale, n)
    if local is not None:
        return local
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def dream_words(
    name: str, variants: int, motion: MotionSpec | None, locale: LocaleLike = None
) -> str:
    """A dream in a few words ("**balanced**", "a zoom of 24 frames (**balanced**)"), the
    same in its own messages, `/queue` and `/dreams`; `variants`: a comparison's count."""
    if variants:
        return tr(locale, "a comparison of {count} (**{name}**)", count=variants, name=name)
    if motion is not None and motion.kind == "zoom":
        return tr(locale, "a zoom of {frames} frames (**{name}**)", frames=motion.frames, name=name)
    if motion is not None:
        return tr(locale, "a clip of {frames} frames (**{name}**)", frames=motion.frames, name=name)
    return f"**{name}**"


def progress_bar(fraction: float) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * BAR_WIDTH)
    return "█" * filled + "░" * (BAR_WIDTH - filled)


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def server_of(interaction: discord.Interaction) -> int | None:
    """The server whose settings, line and limits apply: the interaction's, if the bot is a
    member there; None in DMs and where the app is only installed to the member's account
    (a server the bot is not in), where the bot owner's rules apply instead."""
    guild_id = interaction.guild_id
    if guild_id is None or interaction.client.get_guild(guild_id) is None:
        return None
    return guild_id


def interaction_only(interaction: discord.Interaction) -> bool:
    """The bot may answer only through the interaction (and the member's DMs): it is not in
    the server, or this is a DM between other people (a user-installed app's private
    channel), so its channel is not the bot's to post in."""
    in_foreign_server = interaction.guild_id is not None and server_of(interaction) is None
    return in_foreign_server or interaction.context.private_channel


def is_guild_admin(interaction: discord.Interaction) -> bool:
    """Manage Server in this guild, checked at run time whatever Discord's defaults say
    (only where the bot is a member: a server it is not in has no admins of the bot's)."""
    return server_of(interaction) is not None and interaction.permissions.manage_guild


def presets_for(bot: DreamBot) -> list:
    """The presets this bot's model can run, for dropdowns and autocomplete."""
    return list_presets(model=bot.executor.model_name)


def preset_choices(bot: DreamBot, current: str) -> list[app_commands.Choice[str]]:
    """Presets whose name matches first, then those whose description does."""
    current = current.lower().strip()
    presets = presets_for(bot)
    by_name = [preset for preset in presets if current in preset.name]
    by_text = [p for p in presets if p not in by_name and current in p.description.lower()]
    return [
        app_commands.Choice(name=f"{preset.name}: {preset.description}"[:100], value=preset.name)
        for preset in (by_name + by_text)[:25]
    ]


def target_choices(bot: DreamBot, current: str) -> list[app_commands.Choice[str]]:
    """Classes of this bot's model for `target:`, matched leniently (none if it has no head)."""
    model = bot.executor.model_name
    if not has_classes(model):
        return []
    names = search(model, current)
    return [app_commands.Choice(name=name[:100], value=name[:100]) for name in names]


NO_MENTIONS = discord.AllowedMentions.none()
