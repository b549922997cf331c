"""`/dreamadmin`: per-server limits for server admins (Manage Server), persisted.

Discord hides the group from members without Manage Server (`default_permissions`),
but a server owner can change that in the integration settings, so every call is
checked again here. Every read and write is scoped to the calling server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import NO_MENTIONS, duration, is_guild_admin
from dream_engine.errors import UserError
from dream_engine.service.guild_settings import (
    CLIP_FRAMES_RANGE,
    CLIP_MEGAPIXELS_RANGE,
    CLIP_SECONDS_RANGE,
    COOLDOWN_RANGE,
    DAILY_LIMIT_RANGE,
    MAX_SIDE_RANGE,
    QUEUE_SIZE_RANGE,
    USER_LIMIT_RANGE,
    GuildSettings,
)
from dream_engine.service.history import WeekStats

if TYPE_CHECKING:
    from bot import DreamBot

BAR = 12  # the busiest day's bar in /dreamadmin stats


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
@app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)  # servers only
@app_commands.allowed_installs(guilds=True, users=False)  # never on a member's account
class DreamAdmin(
    commands.GroupCog,
    group_name="dreamadmin",
    group_description="Dream bot settings for this server",
):
    def __init__(self, bot: DreamBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if is_guild_admin(interaction):
            return True
        await interaction.response.send_message(
            "Only members with the Manage Server permission can change dream settings.",
            ephemeral=True,
        )
        return False

    async def _reply(
        self, interaction: discord.Interaction, settings: GuildSettings, what: str
    ) -> None:
        await interaction.response.send_message(
            f"{what}\n{_describe(settings)}", ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    @app_commands.command(name="queue-size", description="How many dreams may wait in this server")
    async def queue_size(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[int, QUEUE_SIZE_RANGE[0], QUEUE_SIZE_RANGE[1]],
    ) -> None:
        settings = await self.bot.guild_settings.update(interaction.guild_id, queue_size=value)
        said = f"Up to {value} dreams may now wait in this server."
        cap = self.bot.settings.max_queue
        if value > cap:  # DREAM_MAX_QUEUE holds every server's line together
            said += f" (The bot takes at most {cap} waiting across all its servers.)"
        await self._reply(interaction, settings, said)

    @app_commands.command(name="user-limit", description="How many dreams one member may hold")
    async def user_limit(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[int, USER_LIMIT_RANGE[0], USER_LIMIT_RANGE[1]],
    ) -> None:
        settings = await self.bot.guild_settings.update(interaction.guild_id, user_limit=value)
        await self._reply(interaction, settings, f"Each member may now hold {value} dreams.")

    @app_commands.command(name="max-side", description="Longest image side processed, in pixels")
    async def max_side(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[int, MAX_SIDE_RANGE[0], MAX_SIDE_RANGE[1]],
    ) -> None:
        settings = await self.bot.guild_settings.update(interaction.guild_id, max_side=value)
        await self._reply(interaction, settings, f"Images are now dreamed at up to {value} px.")

    @app_commands.command(name="clip-frames", description="Most frames of a clip or a zoom")
    async def clip_frames(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[int, CLIP_FRAMES_RANGE[0], CLIP_FRAMES_RANGE[1]],
    ) -> None:
        settings = await self.bot.guild_settings.update(interaction.guild_id, clip_frames=value)
        await self._reply(interaction, settings, f"Clips and zooms may now have {value} frames.")

    @app_commands.command(name="clip-seconds", description="Longest clip members may upload")
    async def clip_seconds(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[int, CLIP_SECONDS_RANGE[0], CLIP_SECONDS_RANGE[1]],
    ) -> None:
        settings = await self.bot.guild_settings.update(interaction.guild_id, clip_seconds=value)
        await self._reply(interaction, settings, f"Clips may now last {value} s.")

    @app_commands.command(
        name="clip-pixels", description="Million pixels one clip or zoom may dream, all frames"
    )
    async def clip_pixels(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[int, CLIP_MEGAPIXELS_RANGE[0], CLIP_MEGAPIXELS_RANGE[1]],
    ) -> None:
        store = self.bot.guild_settings
        settings = await store.update(interaction.guild_id, clip_megapixels=value)
        await self._reply(
            interaction, settings,
            f"A clip or zoom may now dream {value} million pixels (it is dreamed smaller to fit).",
        )  # fmt: skip

    @app_commands.command(
        name="daily-limit", description="Dreams one member may start in any 24 hours (0: no limit)"
    )
    async def daily_limit(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[int, DAILY_LIMIT_RANGE[0], DAILY_LIMIT_RANGE[1]],
    ) -> None:
        settings = await self.bot.guild_settings.update(interaction.guild_id, daily_limit=value)
        said = (
            f"Each member may now start {value} dreams in any 24 hours."
            if value
            else "There is no daily limit now."
        )
        await self._reply(interaction, settings, said)

    @app_commands.command(
        name="cooldown", description="Seconds between one member's dreams (0: none)"
    )
    async def cooldown(
        self,
        interaction: discord.Interaction,
        seconds: app_commands.Range[int, COOLDOWN_RANGE[0], COOLDOWN_RANGE[1]],
    ) -> None:
        settings = await self.bot.guild_settings.update(interaction.guild_id, cooldown=seconds)
        said = (
            f"A member's dreams now start at least {seconds} s apart."
            if seconds
            else "There is no cooldown now."
        )
        await self._reply(interaction, settings, said)

    @app_commands.command(
        name="spoiler", description="Post every dream here as a spoiler (eyes, textures...)"
    )
    async def spoiler(self, interaction: discord.Interaction, value: Literal["on", "off"]) -> None:
        on = value == "on"
        settings = await self.bot.guild_settings.update(interaction.guild_id, spoiler=int(on))
        said = (
            "Every dream here is now posted as a spoiler, with its gallery and animation."
            if on
            else "Dreams here are no longer posted as spoilers (a member may still ask: "
            "`/dream spoiler:true`)."
        )
        await self._reply(interaction, settings, said)

    @app_commands.command(
        name="exempt", description="Members with this role skip the daily limit and cooldown"
    )
    async def exempt(self, interaction: discord.Interaction, role: discord.Role) -> None:
        store = self.bot.guild_settings
        settings = await store.exempt_role(interaction.guild_id, role.id, exempt=True)
        await self._reply(
            interaction, settings, f"{role.mention} now skips the daily limit and cooldown."
        )

    @app_commands.command(
        name="unexempt", description="Members with this role follow the daily limit again"
    )
    async def unexempt(self, interaction: discord.Interaction, role: discord.Role) -> None:
        store = self.bot.guild_settings
        settings = await store.exempt_role(interaction.guild_id, role.id, exempt=False)
        await self._reply(
            interaction, settings, f"{role.mention} follows the daily limit and cooldown again."
        )

    @app_commands.command(
        name="channels", description="Where /dream may be used (default: everywhere)"
    )
    @app_commands.describe(action="add or remove a channel, or clear to allow everywhere")
    async def channels(
        self,
        interaction: discord.Interaction,
        action: Literal["add", "remove", "clear"],
        # Forum posts and voice-channel chats run commands too: their channel is what counts.
        channel: discord.TextChannel
        | discord.ForumChannel
        | discord.VoiceChannel
        | discord.StageChannel
        | None = None,
    ) -> None:
        store, guild_id = self.bot.guild_settings, interaction.guild_id
        if action == "clear":
            settings = await store.set_channels(guild_id, [])
            await self._reply(interaction, settings, "/dream may now be used in every channel.")
            return
        if channel is None:
            await interaction.response.send_message(
                f"Name the channel to {action}.", ephemeral=True
            )
            return
        if action == "add":
            settings = await store.add_channel(guild_id, channel.id)
            await self._reply(
                interaction, settings, f"{channel.mention} added to the dream channels."
            )
            return
        listed = channel.id in (await store.get(guild_id)).channels
        settings = await store.remove_channel(guild_id, channel.id)
        if not listed:
            said = f"{channel.mention} was not a dream channel; nothing changed."
        elif not settings.channels:
            said = f"{channel.mention} removed: no channel is listed, so /dream works everywhere."
        else:
            said = f"{channel.mention} removed from the dream channels."
        await self._reply(interaction, settings, said)

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        """A deleted dream channel leaves the list, or members would be sent to it."""
        if channel.id in (await self.bot.guild_settings.get(channel.guild.id)).channels:
            await self.bot.guild_settings.remove_channel(channel.guild.id, channel.id)

    @app_commands.command(name="show", description="Show this server's dream settings")
    async def show(self, interaction: discord.Interaction) -> None:
        settings = await self.bot.guild_settings.get(interaction.guild_id)
        await self._reply(interaction, settings, "Dream settings for this server:")

    @app_commands.command(name="status", description="The dream workers: where, what, how many")
    async def status(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(
            workers_text(self.bot, interaction.guild_id),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @app_commands.command(
        name="stats", description="This server's week: dreams a day, waits, favourite presets"
    )
    async def stats(self, interaction: discord.Interaction) -> None:
        week = await self.bot.history.week(interaction.guild_id)
        await interaction.response.send_message(
            stats_text(week), ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    async def cog_app_command_error(
        self, interaction: discord.Interaction, error: Exception
    ) -> None:
        original = getattr(error, "original", error)
        if isinstance(original, UserError) and not interaction.response.is_done():
            await interaction.response.send_message(str(original), ephemeral=True)
            return
        raise error


def workers_text(bot: DreamBot, guild_id: int | None) -> str:
    """The executor's workers and the queue; jobs of other servers stay anonymous."""
    executor, queue = bot.executor, bot.queue
    workers = executor.workers()
    lines = [
        f"**Dream workers** ({bot.settings.executor}): {executor.capacity} ready of "
        f"{len(workers)}; {queue.waiting_count()} waiting, {len(queue.running())} running."
    ]
    for worker in workers:
        job = queue.get(worker.job) if worker.job else None
        if worker.job is None:
            doing = "idle"
        elif job is not None and job.guild_id == guild_id:
            doing = f"dreaming job `{job.id}` for <@{job.user_id}>"
        else:
            doing = "dreaming (another server's job)"
        precision = f", {worker.precision}" if worker.precision else ""
        lines.append(
            f"• `{worker.name}` {worker.state} on {worker.host}, {worker.device}{precision}: "
            f"{worker.jobs_done} done, {doing}"
        )
    return "\n".join(lines)[:2000]


def stats_text(week: WeekStats) -> str:
    """The week as a few lines: a bar a day, the medians, the presets members reach for."""
    most = max((count for _day, count in week.per_day), default=0) or 1
    days = [
        f"`{day:%a %d %b}` `{'█' * round(BAR * count / most):<{BAR}}` {count}"
        for day, count in week.per_day
    ]
    lines = [f"**Dreams this week** (UTC days): {week.total}", *days]
    if week.median_wait is not None and week.median_run is not None:
        lines.append(
            f"Median wait in line {duration(week.median_wait)}, median dream "
            f"{duration(week.median_run)}."
        )
    if week.top_presets:
        top = ", ".join(f"{name} ({count})" for name, count in week.top_presets)
        lines.append(f"Most used presets: {top}")
    return "\n".join(lines)


def _describe(settings: GuildSettings) -> str:
    return "\n".join(f"**{name}**: {value}" for name, value in settings.describe())


async def setup(bot: DreamBot) -> None:
    await bot.add_cog(DreamAdmin(bot))
