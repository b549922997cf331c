"""`/dreamadmin`: per-server limits for server admins (Manage Server), persisted.

Discord hides the group from members without Manage Server (`default_permissions`),
but a server owner can change that in the integration settings, so every call is
checked again here. Every read and write is scoped to the calling server.

Replies are in the admin's language (`tr`); the settings' rows come typed from the
service (`GuildSettings.rows`) and are worded here. `/dreamadmin status` stays English:
it is an operator's detail (hosts, devices, worker states).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import NO_MENTIONS, duration, is_guild_admin
from cogs.i18n import LocaleLike, tr
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
    SettingRow,
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
            tr(
                interaction.locale,
                "Only members with the Manage Server permission can change dream settings.",
            ),
            ephemeral=True,
        )
        return False

    async def _reply(
        self, interaction: discord.Interaction, settings: GuildSettings, what: str
    ) -> None:
        await interaction.response.send_message(
            f"{what}\n{describe_settings(settings, interaction.locale)}",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @app_commands.command(name="queue-size", description="How many dreams may wait in this server")
    async def queue_size(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[int, QUEUE_SIZE_RANGE[0], QUEUE_SIZE_RANGE[1]],
    ) -> None:
        settings = await self.bot.guild_settings.update(interaction.guild_id, queue_size=value)
        locale = interaction.locale
        said = tr(locale, "Up to {value} dreams may now wait in this server.", value=value)
        cap = self.bot.settings.max_queue
        if value > cap:  # DREAM_MAX_QUEUE holds every server's line together
            said += " " + tr(
                locale, "(The bot takes at most {cap} waiting across all its servers.)", cap=cap
            )
        await self._reply(interaction, settings, said)

    @app_commands.command(name="user-limit", description="How many dreams one member may hold")
    async def user_limit(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[int, USER_LIMIT_RANGE[0], USER_LIMIT_RANGE[1]],
    ) -> None:
        settings = await self.bot.guild_settings.update(interaction.guild_id, user_limit=value)
        said = tr(interaction.locale, "Each member may now hold {value} dreams.", value=value)
        await self._reply(interaction, settings, said)

    @app_commands.command(name="max-side", description="Longest image side processed, in pixels")
    async def max_side(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[int, MAX_SIDE_RANGE[0], MAX_SIDE_RANGE[1]],
    ) -> None:
        settings = await self.bot.guild_settings.update(interaction.guild_id, max_side=value)
        said = tr(interaction.locale, "Images are now dreamed at up to {value} px.", value=value)
        await self._reply(interaction, settings, said)

    @app_commands.command(name="clip-frames", description="Most frames of a clip or a zoom")
    async def clip_frames(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[int, CLIP_FRAMES_RANGE[0], CLIP_FRAMES_RANGE[1]],
    ) -> None:
        settings = await self.bot.guild_settings.update(interaction.guild_id, clip_frames=value)
        said = tr(interaction.locale, "Clips and zooms may now have {value} frames.", value=value)
        await self._reply(interaction, settings, said)

    @app_commands.command(name="clip-seconds", description="Longest clip members may upload")
    async def clip_seconds(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[int, CLIP_SECONDS_RANGE[0], CLIP_SECONDS_RANGE[1]],
    ) -> None:
        settings = await self.bot.guild_settings.update(interaction.guild_id, clip_seconds=value)
        said = tr(interaction.locale, "Clips may now last {value} s.", value=value)
        await self._reply(interaction, settings, said)

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
        said = tr(
            interaction.locale,
            "A clip or zoom may now dream {value} million pixels (it is dreamed smaller to fit).",
            value=value,
        )
        await self._reply(interaction, settings, said)

    @app_commands.command(
        name="daily-limit", description="Dreams one member may start in any 24 hours (0: no limit)"
    )
    async def daily_limit(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[int, DAILY_LIMIT_RANGE[0], DAILY_LIMIT_RANGE[1]],
    ) -> None:
        settings = await self.bot.guild_settings.update(interaction.guild_id, daily_limit=value)
        locale = interaction.locale
        said = (
            tr(locale, "Each member may now start {value} dreams in any 24 hours.", value=value)
            if value
            else tr(locale, "There is no daily limit now.")
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
        locale = interaction.locale
        said = (
            tr(locale, "A member's dreams now start at least {seconds} s apart.", seconds=seconds)
            if seconds
            else tr(locale, "There is no cooldown now.")
        )
        await self._reply(interaction, settings, said)

    @app_commands.command(
        name="spoiler", description="Post every dream here as a spoiler (eyes, textures...)"
    )
    async def spoiler(self, interaction: discord.Interaction, value: Literal["on", "off"]) -> None:
        on = value == "on"
        settings = await self.bot.guild_settings.update(interaction.guild_id, spoiler=int(on))
        locale = interaction.locale
        said = (
            tr(
                locale,
                "Every dream here is now posted as a spoiler, with its gallery and animation.",
            )
            if on
            else tr(
                locale,
                "Dreams here are no longer posted as spoilers (a member may still ask: "
                "`/dream spoiler:true`).",
            )
        )
        await self._reply(interaction, settings, said)

    @app_commands.command(
        name="exempt", description="Members with this role skip the daily limit and cooldown"
    )
    async def exempt(self, interaction: discord.Interaction, role: discord.Role) -> None:
        store = self.bot.guild_settings
        settings = await store.exempt_role(interaction.guild_id, role.id, exempt=True)
        said = tr(
            interaction.locale, "{role} now skips the daily limit and cooldown.", role=role.mention
        )
        await self._reply(interaction, settings, said)

    @app_commands.command(
        name="unexempt", description="Members with this role follow the daily limit again"
    )
    async def unexempt(self, interaction: discord.Interaction, role: discord.Role) -> None:
        store = self.bot.guild_settings
        settings = await store.exempt_role(interaction.guild_id, role.id, exempt=False)
        said = tr(
            interaction.locale,
            "{role} follows the daily limit and cooldown again.",
            role=role.mention,
        )
        await self._reply(interaction, settings, said)

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
        locale = interaction.locale
        if action == "clear":
            settings = await store.set_channels(guild_id, [])
            said = tr(locale, "/dream may now be used in every channel.")
            await self._reply(interaction, settings, said)
            return
        if channel is None:
            text = (
                tr(locale, "Name the channel to add.")
                if action == "add"
                else tr(locale, "Name the channel to remove.")
            )
            await interaction.response.send_message(text, ephemeral=True)
            return
        mention = channel.mention
        if action == "add":
            settings = await store.add_channel(guild_id, channel.id)
            said = tr(locale, "{channel} added to the dream channels.", channel=mention)
            await self._reply(interaction, settings, said)
            return
        listed = channel.id in (await store.get(guild_id)).channels
        settings = await store.remove_channel(guild_id, channel.id)
        if not listed:
            said = tr(
                locale, "{channel} was not a dream channel; nothing changed.", channel=mention
            )
        elif not settings.channels:
            said = tr(
                locale,
                "{channel} removed: no channel is listed, so /dream works everywhere.",
                channel=mention,
            )
        else:
            said = tr(locale, "{channel} removed from the dream channels.", channel=mention)
        await self._reply(interaction, settings, said)

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        """A deleted dream channel leaves the list, or members would be sent to it."""
        if channel.id in (await self.bot.guild_settings.get(channel.guild.id)).channels:
            await self.bot.guild_settings.remove_channel(channel.guild.id, channel.id)

    @app_commands.command(name="show", description="Show this server's dream settings")
    async def show(self, interaction: discord.Interaction) -> None:
        settings = await self.bot.guild_settings.get(interaction.guild_id)
        said = tr(interaction.locale, "Dream settings for this server:")
        await self._reply(interaction, settings, said)

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
            stats_text(week, interaction.locale), ephemeral=True, allowed_mentions=NO_MENTIONS
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


def stats_text(week: WeekStats, locale: LocaleLike = None) -> str:
    """The week as a few lines: a bar a day, the medians, the presets members reach for.

    The days are written `Mon 02 Jun` in English whatever the admin's language (they are
    short, and a bar chart's labels); the sentences are in the admin's language."""
    most = max((count for _day, count in week.per_day), default=0) or 1
    days = [
        f"`{day:%a %d %b}` `{'█' * round(BAR * count / most):<{BAR}}` {count}"
        for day, count in week.per_day
    ]
    lines = [tr(locale, "**Dreams this week** (UTC days): {total}", total=week.total), *days]
    if week.median_wait is not None and week.median_run is not None:
        lines.append(
            tr(
                locale,
                "Median wait in line {wait}, median dream {run}.",
                wait=duration(week.median_wait),
                run=duration(week.median_run),
            )
        )
    if week.top_presets:
        top = ", ".join(f"{name} ({count})" for name, count in week.top_presets)
        lines.append(tr(locale, "Most used presets: {presets}", presets=top))
    return "\n".join(lines)


def describe_settings(settings: GuildSettings, locale: LocaleLike = None) -> str:
    """`/dreamadmin show`'s list in the admin's language; in English exactly the service's
    `GuildSettings.describe()`."""
    labels = _labels(locale)
    return "\n".join(
        f"**{labels[row.name]}**: {_setting_value(row, locale)}" for row in settings.rows()
    )


def _labels(locale: LocaleLike) -> dict[str, str]:
    """Each setting's name in the list; one `tr` literal each, for the catalogue test."""
    return {
        "queue_size": tr(locale, "Queue size"),
        "user_limit": tr(locale, "User limit"),
        "max_side": tr(locale, "Max side"),
        "clip_frames": tr(locale, "Clip frames"),
        "clip_seconds": tr(locale, "Clip seconds"),
        "clip_megapixels": tr(locale, "Clip pixels"),
        "daily_limit": tr(locale, "Daily limit"),
        "cooldown": tr(locale, "Cooldown"),
        "spoiler": tr(locale, "Spoilers"),
        "exempt_roles": tr(locale, "Exempt roles"),
        "channels": tr(locale, "Channels"),
    }


def _setting_value(row: SettingRow, locale: LocaleLike) -> str:
    """A row's value, "(default)" marked; roles and channels are mentions, which Discord
    shows as names."""
    value = row.value
    if isinstance(value, tuple):
        if row.name == "exempt_roles":
            roles = " ".join(f"<@&{role}>" for role in value)
            return roles or tr(locale, "none (admins always are)")
        channels = ", ".join(f"<#{channel}>" for channel in value)
        return channels or tr(locale, "everywhere (default)")
    text = _number(row.name, value, locale)
    return tr(locale, "{value} (default)", value=text) if row.default else text


def _number(name: str, value: int, locale: LocaleLike) -> str:
    if name == "max_side":
        return f"{value} px"
    if name == "clip_seconds" or (name == "cooldown" and value):
        return f"{value} s"
    if name == "clip_megapixels":
        return tr(locale, "{n} million", n=value)
    if name in ("daily_limit", "cooldown") and not value:
        return tr(locale, "none")
    if name == "spoiler":
        return tr(locale, "on") if value else tr(locale, "off")
    return str(value)


async def setup(bot: DreamBot) -> None:
    await bot.add_cog(DreamAdmin(bot))
