"""The buttons and dropdowns on dream messages; they survive restarts.

Each is a `DynamicItem` whose `custom_id` carries what it needs (a job id, a
remembered image's id), so a button under a week-old result still works after
the bot restarted. They reach the dream service through `bot.dreams` and the
intake through `cogs.intake`, never through another cog.
"""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING

import discord

from cogs.common import is_guild_admin, presets_for
from cogs.dream_info import info_message, reroll_overrides
from cogs.i18n import tr
from cogs.intake import MotionAsk, start_dream
from cogs.refusals import cancel_reply
from dream_engine.core.presets import DEFAULT_PRESET
from dream_engine.service.history import DreamEntry
from dream_engine.service.sources import KEEP_SECONDS, ImageSource

if TYPE_CHECKING:
    from bot import DreamBot


async def cancel_dream(interaction: discord.Interaction, job_id: str) -> None:
    """Cancel for the caller (owner, or admin of the job's server), privately answered."""
    bot: DreamBot = interaction.client  # type: ignore[assignment]

    async def respond(message: str) -> None:
        text = cancel_reply(message, interaction.locale)
        await interaction.response.send_message(text, ephemeral=True)

    await bot.dreams.cancel(
        job_id,
        by_user=interaction.user.id,
        admin_of_guild=interaction.guild_id if is_guild_admin(interaction) else None,
        respond=respond,
    )


class JobButton(discord.ui.DynamicItem[discord.ui.Button], template=r"dream:job:(?P<job>\w+)"):
    """A button about one job whose `custom_id` (`dream:<action>:<job id>`) carries all it
    needs, so it answers after any restart; a subclass names its action and looks."""

    action = "job"
    label = ""
    emoji: str | None = None
    style = discord.ButtonStyle.secondary

    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=self.label, emoji=self.emoji, style=self.style,
                custom_id=f"dream:{self.action}:{job_id}",
            )
        )  # fmt: skip
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match):  # type: ignore[override]
        return cls(match["job"])


class CancelButton(JobButton, template=r"dream:cancel:(?P<job>\w+)"):
    """Cancel a queued or running dream."""

    action, label = "cancel", "Cancel"

    async def callback(self, interaction: discord.Interaction) -> None:
        await cancel_dream(interaction, self.job_id)


class PresetPicker(
    discord.ui.DynamicItem[discord.ui.Select],
    template=r"dream:pick:(?P<source>\d+)(?P<asked>:asked)?",
):
    """A dropdown of presets for a remembered image; picking one starts a dream.

    `asked`: the dropdown answers a `/dream` without a preset, so the dream keeps
    the other options asked there (saved with the image). "Dream again with…"
    under a result is a fresh start with the picked preset, as its name says.
    """

    def __init__(
        self,
        source_id: int,
        options: list[discord.SelectOption] | None = None,
        *,
        asked: bool = False,
    ) -> None:
        super().__init__(
            discord.ui.Select(
                custom_id=f"dream:pick:{source_id}{':asked' if asked else ''}",
                placeholder="Dream again with…" if options else "Pick a preset",
                options=options or [discord.SelectOption(label=DEFAULT_PRESET)],
            )
        )
        self.source_id = source_id
        self.asked = asked

    @classmethod
    async def from_custom_id(cls, interaction, item, match):  # type: ignore[override]
        return cls(int(match["source"]), asked=bool(match["asked"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: DreamBot = interaction.client  # type: ignore[assignment]
        source = await bot.sources.get(self.source_id)
        if source is None:
            await interaction.response.send_message(
                tr(
                    interaction.locale,
                    "That image is no longer remembered; attach it again with /dream.",
                ),
                ephemeral=True,
            )
            return
        asked = (source.options or {}) if self.asked else {}
        guide = asked.get("guide")
        await start_dream(
            bot, interaction, source, preset_name=self.item.values[0],
            overrides=asked.get("overrides", {}), gallery=asked.get("gallery", False),
            animate=asked.get("animate", False),
            guide=None if guide is None else ImageSource.unsaved(
                **guide, guild_id=source.guild_id, user_id=source.user_id
            ),
            motion=MotionAsk(**asked.get("motion", {})), spoiler=asked.get("spoiler", False),
        )  # fmt: skip


class DeleteButton(
    discord.ui.DynamicItem[discord.ui.Button], template=r"dream:delete:(?P<owner>\d+)"
):
    """Remove a posted dream: its owner (the id in the custom_id) or a server admin may."""

    def __init__(self, owner_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Delete", style=discord.ButtonStyle.danger,
                custom_id=f"dream:delete:{owner_id}",
            )
        )  # fmt: skip
        self.owner_id = owner_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match):  # type: ignore[override]
        return cls(int(match["owner"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        if interaction.user.id != self.owner_id and not is_guild_admin(interaction):
            await interaction.response.send_message(
                tr(
                    interaction.locale,
                    "Only the member who asked for this dream, or a server admin, can delete it.",
                ),
                ephemeral=True,
            )
            return
        # Through the interaction (its @original is the message the button is on), not the
        # channel: where the app is only installed to a member's account, the bot has no
        # access to the channel, and this works the same in servers and DMs.
        await interaction.response.defer()
        with contextlib.suppress(discord.NotFound):  # deleted already: the wish holds
            await interaction.delete_original_response()
        await interaction.followup.send(tr(interaction.locale, "Deleted."), ephemeral=True)


async def remembered(interaction: discord.Interaction, job_id: str) -> DreamEntry | None:
    """The history's entry for a result's button, or None with the member told why."""
    bot: DreamBot = interaction.client  # type: ignore[assignment]
    entry = await bot.history.get(job_id)
    posted_under = interaction.message.id if interaction.message is not None else None
    if entry is not None and entry.message_id not in (None, posted_under):
        entry = None  # job ids are short: a later job drew this one's id and took its row
    if entry is None:
        text = tr(
            interaction.locale,
            "That dream is no longer in the history (it keeps {days} days); attach the image "
            "again with /dream.",
            days=bot.history.retention_days,
        )
        await interaction.response.send_message(text, ephemeral=True)
    return entry


class RerollButton(JobButton, template=r"dream:reroll:(?P<job>\w+)"):
    """The same image and parameters with a new seed: a new dream, queued and counted like
    any (the member who clicks is its owner, against their limits)."""

    action, label, emoji, style = "reroll", "Reroll", "🎲", discord.ButtonStyle.primary

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: DreamBot = interaction.client  # type: ignore[assignment]
        entry = await remembered(interaction, self.job_id)
        if entry is None:
            return
        if entry.variants:
            await interaction.response.send_message(
                tr(interaction.locale, "A comparison is not rerolled; run /compare again."),
                ephemeral=True,
            )
            return
        source = None if entry.source_id is None else await bot.sources.get(entry.source_id)
        guide = None
        if entry.guide_source_id is not None:
            guide = await bot.sources.get(entry.guide_source_id)
        if source is None or (entry.guide_name is not None and guide is None):
            text = tr(
                interaction.locale,
                "That image is no longer remembered (images are kept {days} days); attach it "
                "again with /dream.",
                days=KEEP_SECONDS // 86400,
            )
            await interaction.response.send_message(text, ephemeral=True)
            return
        await start_dream(
            bot, interaction, source, preset_name=entry.preset,
            overrides=reroll_overrides(entry), gallery=entry.gallery, animate=entry.animate,
            guide=guide, motion=MotionAsk.asking_for(entry.motion), spoiler=entry.spoiler,
        )  # fmt: skip


class InfoButton(JobButton, template=r"dream:info:(?P<job>\w+)"):
    """How this dream was made, privately: model, precision, every parameter, the seed,
    its times, and the command line that makes it again."""

    action, label, emoji = "info", "Info", "ℹ️"

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: DreamBot = interaction.client  # type: ignore[assignment]
        entry = await remembered(interaction, self.job_id)
        if entry is None:
            return
        text, line = info_message(entry, bot.settings.weights, interaction.locale)
        if line is None:
            await interaction.response.send_message(text, ephemeral=True)
            return
        file = discord.File(io.BytesIO(f"{line}\n".encode()), filename="make-it-again.sh")
        await interaction.response.send_message(text, file=file, ephemeral=True)


def result_view(
    bot: DreamBot, source_id: int | None, owner_id: int, job_id: str, *, reroll: bool = True
) -> discord.ui.View:
    """Under a posted dream: "Dream again with…" (when its image is remembered), then
    Reroll (not for a comparison), Info and Delete on one row."""
    view = (
        picker_view(bot, source_id, "Dream again with…")
        if source_id is not None
        else discord.ui.View(timeout=None)
    )
    if reroll and source_id is not None:
        view.add_item(RerollButton(job_id))
    view.add_item(InfoButton(job_id))
    view.add_item(DeleteButton(owner_id))
    return view


def picker_view(
    bot: DreamBot, source_id: int, placeholder: str, *, asked: bool = False
) -> discord.ui.View:
    options = [
        discord.SelectOption(
            label=preset.name, value=preset.name, description=preset.description[:100]
        )
        for preset in presets_for(bot)[:25]
    ]
    picker = PresetPicker(source_id, options, asked=asked)
    picker.item.placeholder = placeholder
    view = discord.ui.View(timeout=None)
    view.add_item(picker)
    return view


def cancel_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


#: Registered once at start-up so their callbacks answer after any restart.
PERSISTENT_ITEMS = (CancelButton, PresetPicker, DeleteButton, RerollButton, InfoButton)
