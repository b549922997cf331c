"""The buttons and dropdowns on dream messages; they survive restarts.

Each is a `DynamicItem` whose `custom_id` carries what it needs (a job id, a
remembered image's id), so a button under a week-old result still works after
the bot restarted. They reach the dream service through `bot.dreams` and the
intake through `cogs.intake`, never through another cog.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import discord

from cogs.common import is_guild_admin, presets_for
from cogs.intake import MotionAsk, start_dream
from dream_engine.core.presets import DEFAULT_PRESET
from dream_engine.service.sources import ImageSource

if TYPE_CHECKING:
    from bot import DreamBot


async def cancel_dream(interaction: discord.Interaction, job_id: str) -> None:
    """Cancel for the caller (owner, or admin of the job's server), privately answered."""
    bot: DreamBot = interaction.client  # type: ignore[assignment]

    async def respond(message: str) -> None:
        await interaction.response.send_message(message, ephemeral=True)

    await bot.dreams.cancel(
        job_id,
        by_user=interaction.user.id,
        admin_of_guild=interaction.guild_id if is_guild_admin(interaction) else None,
        respond=respond,
    )


class CancelButton(
    discord.ui.DynamicItem[discord.ui.Button], template=r"dream:cancel:(?P<job>\w+)"
):
    """Cancel a queued or running dream; survives restarts (custom_id carries the job id)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Cancel",
                style=discord.ButtonStyle.secondary,
                custom_id=f"dream:cancel:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match):  # type: ignore[override]
        return cls(match["job"])

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
                "That image is no longer remembered; attach it again with /dream.", ephemeral=True
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
                "Only the member who asked for this dream, or a server admin, can delete it.",
                ephemeral=True,
            )
            return
        if interaction.message is not None:
            with contextlib.suppress(discord.NotFound):  # deleted already: the wish holds
                await interaction.message.delete()
        await interaction.response.send_message("Deleted.", ephemeral=True)


def result_view(bot: DreamBot, source_id: int | None, owner_id: int) -> discord.ui.View:
    """Under a posted dream: "Dream again with…" (when its image is remembered) and Delete."""
    view = (
        picker_view(bot, source_id, "Dream again with…")
        if source_id is not None
        else discord.ui.View(timeout=None)
    )
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
PERSISTENT_ITEMS = (CancelButton, PresetPicker, DeleteButton)
