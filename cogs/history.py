"""`/dreams`: a member's own last dreams here, with a jump link to each result.

Read from the dream history (`service/history.py`), which keeps metadata only, so
the list is as long as the history's retention and costs no image storage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import dream_words, usable_everywhere
from cogs.i18n import LocaleLike, tr
from dream_engine.service.history import DreamEntry

if TYPE_CHECKING:
    from bot import DreamBot

RECENT = 10


def entry_line(entry: DreamEntry, locale: LocaleLike = None) -> str:
    """One dream in a line: what it was, when (a Discord timestamp), where to see it; in the
    reader's words, with the same phrases as the dream's own messages."""
    what = dream_words(entry.preset, entry.variants, entry.motion, locale)
    link = entry.jump_url()
    seen = " " + tr(locale, "[result]({link})", link=link) if link else ""
    return f"<t:{int(entry.finished_at)}:R> {what}, {entry.width}×{entry.height}{seen}"


class HistoryCog(commands.Cog):
    def __init__(self, bot: DreamBot) -> None:
        self.bot = bot

    @usable_everywhere
    @app_commands.command(name="dreams", description="Your last dreams here, with links")
    async def dreams(self, interaction: discord.Interaction) -> None:
        entries = await self.bot.history.recent(interaction.guild_id, interaction.user.id, RECENT)
        locale, days = interaction.locale, self.bot.history.retention_days
        if not entries:
            text = tr(
                locale, "You have no dreams here yet (they are remembered for {days} days).",
                days=days,
            )  # fmt: skip
        else:
            lines = [entry_line(entry, locale) for entry in entries]
            text = "\n".join([tr(locale, "Your latest dreams here, newest first:"), *lines])
        await interaction.response.send_message(
            text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )


async def setup(bot: DreamBot) -> None:
    await bot.add_cog(HistoryCog(bot))
