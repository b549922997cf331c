"""`/queue` and `/cancel`: a member's view of the line and their own jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import is_guild_admin, ordinal, server_of, usable_everywhere
from cogs.delivery import describe
from cogs.i18n import tr
from cogs.views import cancel_dream

if TYPE_CHECKING:
    from bot import DreamBot


class QueueCog(commands.Cog):
    def __init__(self, bot: DreamBot) -> None:
        self.bot = bot

    @usable_everywhere
    @app_commands.command(name="queue", description="Your dreams and the length of the line")
    async def queue(self, interaction: discord.Interaction) -> None:
        queue, locale = self.bot.queue, interaction.locale
        lines = []
        for job, position in queue.jobs_of(interaction.user.id):
            where = (
                tr(locale, "dreaming now")
                if position is None
                else tr(locale, "{position} in line", position=ordinal(position, locale))
            )
            lines.append(f"`{job.id}` {describe(job.payload, locale)}: {where}")
        mine = "\n".join(lines) or tr(locale, "You have no dreams queued or running.")
        counts = {
            "waiting": queue.waiting_count(), "running": len(queue.running()),
            "here": queue.waiting_count(server_of(interaction)),  # None: the DMs' line
        }  # fmt: skip
        summary = (
            tr(locale, "{waiting} waiting in all, {here} in this server, "
                       "{running} dreaming now.", **counts)
            if server_of(interaction)
            else tr(locale, "{waiting} waiting in all, {here} in direct messages, "
                            "{running} dreaming now.", **counts)
        )  # fmt: skip
        await interaction.response.send_message(f"{mine}\n\n{summary}", ephemeral=True)

    @usable_everywhere
    @app_commands.command(name="cancel", description="Cancel one of your dreams")
    @app_commands.describe(job="Which dream (default: your latest)")
    async def cancel(self, interaction: discord.Interaction, job: str | None = None) -> None:
        if job is None:
            mine = self.bot.queue.jobs_of(interaction.user.id, server_of(interaction))
            if not mine:
                await interaction.response.send_message(
                    tr(interaction.locale, "You have no dreams queued or running here."),
                    ephemeral=True,
                )
                return
            job = max(mine, key=lambda status: status.job.created_at).job.id
        await cancel_dream(interaction, job.strip())

    @cancel.autocomplete("job")
    async def _job_autocomplete(self, interaction: discord.Interaction, current: str):
        """The caller's dreams here; for an admin, every dream of this server, with whose."""
        queue = self.bot.queue
        server = server_of(interaction)
        if server is not None and is_guild_admin(interaction):
            jobs = [job for job in [*queue.running(), *queue.waiting()] if job.guild_id == server]
        else:
            jobs = [status.job for status in queue.jobs_of(interaction.user.id, server)]
        return [
            app_commands.Choice(
                name=f"{job.id}: {job.payload.name} ({job.payload.record.user_name})"[:100],
                value=job.id,
            )
            for job in jobs
            if job.id.startswith(current.strip())
        ][:25]


async def setup(bot: DreamBot) -> None:
    await bot.add_cog(QueueCog(bot))
