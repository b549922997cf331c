"""`/dream` and "Dream this image": the commands that start a dream.

The commands only gather what the member asked; `cogs/intake.py` checks it and
hands it to the dream service (`bot.dreams`, `dream_engine/service/scheduler.py`),
which queues, saves and runs it and tells `cogs/delivery.py` what to show. At
start-up this cog starts the service with that delivery; at shutdown it closes
it, which keeps every unfinished job saved for the next start.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import NO_MENTIONS, preset_choices, target_choices, usable_everywhere
from cogs.delivery import Delivery
from cogs.i18n import tr
from cogs.intake import MotionAsk, attached, pictures_in, precheck, start_dream, takes
from cogs.views import PERSISTENT_ITEMS, picker_view
from dream_engine.motion.spec import MAX_ZOOM_FRAMES

if TYPE_CHECKING:
    from bot import DreamBot


class DreamCog(commands.Cog):
    def __init__(self, bot: DreamBot) -> None:
        self.bot = bot
        self.context_menu = usable_everywhere(
            app_commands.ContextMenu(name="Dream this image", callback=self.dream_this)
        )
        self.bot.tree.add_command(self.context_menu)

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(*PERSISTENT_ITEMS)
        await self.bot.dreams.start(Delivery(self.bot))

    async def cog_unload(self) -> None:
        """Shut down without losing a job (see `Scheduler.close`)."""
        self.bot.tree.remove_command(self.context_menu.name, type=self.context_menu.type)
        await self.bot.dreams.close()

    @usable_everywhere
    @app_commands.command(name="dream", description="DeepDream an image")
    @app_commands.describe(
        image="The picture to dream (PNG, JPEG, WebP, GIF)",
        preset="How to dream; leave empty to pick from a list",
        gallery="Also post the image after every octave",
        octaves="Number of octaves (1-10), overrides the preset",
        octave_scale="Size ratio between octaves (1.05-3), overrides the preset",
        step="Gradient step size (0.0001-1), overrides the preset",
        iterations="Steps per octave (1-1000), overrides the preset",
        max_loss="Stop an octave once its loss passes this",
        layers="Layer weights, e.g. mixed3=0.5,mixed4=1 (none: only channels or a target)",
        jitter="Random shift of the image each step, in px (0-256), overrides the preset",
        seed="Seed for the random shifts (with jitter: same seed, same dream)",
        lap_levels="Laplacian gradient normalisation, bands (0-8, 0 off): smoother, larger shapes",
        scale_jitter="Random scale of the network's view each step, e.g. 0.05 (0-0.5, 0 off)",
        rotate_jitter="Random rotation of the network's view each step, degrees (0-45, 0 off)",
        target="A class to make the network find, e.g. golden retriever",
        channels="Single feature channels to dream, e.g. mixed4:97,mixed5:12",
        animate="Also post a GIF of the dream forming",
        guide="A second image whose shapes and textures the dream grows",
        guide_weight="The guide's pull against the layers' own (0.01-1000, default 1)",
        zoom="An endless zoom of this many frames into the dream (2-120)",
        zoom_factor="How much each zoom frame scales the last (1-1.5, default 1.05)",
        rotate="Degrees each zoom frame turns (-15 to 15, default 0)",
        blend="A clip: how much of each dream the next frame keeps (0-1, default 0.8)",
        format="A zoom or clip comes back as MP4 (default) or GIF",
        spoiler="Post the dream (and its gallery, GIF) as a spoiler",
    )
    async def dream(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        preset: str | None = None,
        gallery: bool = False,
        octaves: app_commands.Range[int, 1, 10] | None = None,
        octave_scale: app_commands.Range[float, 1.05, 3.0] | None = None,
        step: app_commands.Range[float, 0.0001, 1.0] | None = None,
        iterations: app_commands.Range[int, 1, 1000] | None = None,
        max_loss: app_commands.Range[float, 0.001, 1000000.0] | None = None,
        layers: app_commands.Range[str, 1, 500] | None = None,
        jitter: app_commands.Range[int, 0, 256] | None = None,
        seed: app_commands.Range[int, 0, 2147483647] | None = None,
        lap_levels: app_commands.Range[int, 0, 8] | None = None,
        scale_jitter: app_commands.Range[float, 0.0, 0.5] | None = None,
        rotate_jitter: app_commands.Range[float, 0.0, 45.0] | None = None,
        target: app_commands.Range[str, 1, 100] | None = None,
        channels: app_commands.Range[str, 1, 500] | None = None,
        animate: bool = False,
        guide: discord.Attachment | None = None,
        guide_weight: app_commands.Range[float, 0.01, 1000.0] | None = None,
        zoom: app_commands.Range[int, 2, MAX_ZOOM_FRAMES] | None = None,
        zoom_factor: app_commands.Range[float, 1.0, 1.5] | None = None,
        rotate: app_commands.Range[float, -15.0, 15.0] | None = None,
        blend: app_commands.Range[float, 0.0, 1.0] | None = None,
        format: Literal["mp4", "gif"] | None = None,
        spoiler: bool = False,
    ) -> None:
        overrides = {
            "octaves": octaves, "octave_scale": octave_scale, "step": step,
            "iterations": iterations, "max_loss": max_loss, "jitter": jitter, "seed": seed,
            "lap_levels": lap_levels, "scale_jitter": scale_jitter, "rotate_jitter": rotate_jitter,
            "layers": layers, "target": target, "channels": channels,
            "guide_weight": guide_weight,
        }  # fmt: skip
        source = attached(interaction, image)
        guide_source = None if guide is None else attached(interaction, guide)
        motion = MotionAsk(zoom, zoom_factor, rotate, blend, format)
        if preset is None:
            if not await precheck(
                self.bot, interaction, source, None, overrides, guide=guide_source,
                motion=motion,
            ):  # fmt: skip
                return
            given = {name: value for name, value in overrides.items() if value is not None}
            asked = {
                "overrides": given, "gallery": gallery, "animate": animate, "spoiler": spoiler
            }  # fmt: skip
            if guide_source is not None:  # found again by the dropdown, like the image
                asked["guide"] = guide_source.attachment()
            if motion.to_dict():
                asked["motion"] = motion.to_dict()
            # The dropdown needs the image's id, and keeps what else was asked with it.
            source = await self.bot.sources.save(replace(source, options=asked))
            locale = interaction.locale
            await interaction.response.send_message(
                tr(locale, "Pick a preset to dream this image with:"),
                view=picker_view(self.bot, source.id, tr(locale, "Pick a preset"), asked=True),
                ephemeral=True,
            )
            return
        await start_dream(
            self.bot, interaction, source, preset_name=preset, overrides=overrides,
            gallery=gallery, animate=animate, guide=guide_source, motion=motion,
            spoiler=spoiler,
        )  # fmt: skip

    @dream.autocomplete("preset")
    async def _preset_autocomplete(self, interaction: discord.Interaction, current: str):
        return preset_choices(self.bot, current)

    @dream.autocomplete("target")
    async def _target_autocomplete(self, interaction: discord.Interaction, current: str):
        return target_choices(self.bot, current)

    async def dream_this(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Message context menu: pick a preset for an image someone posted: the first the
        bot can take (an SVG or an oversized file before a photo is skipped), attached or
        shown by an embed (a link's preview, another bot's picture)."""
        found = pictures_in(message, guild_id=interaction.guild_id, user_id=interaction.user.id)
        source = next((s for s in found if takes(self.bot, s)), found[0] if found else None)
        if source is None:
            await interaction.response.send_message(
                tr(
                    interaction.locale,
                    "That message has no image attached. Use it on a message with a picture.",
                ),
                ephemeral=True,
            )
            return
        if not await precheck(self.bot, interaction, source, None, {}):
            return
        source = await self.bot.sources.save(source)
        locale = interaction.locale
        await interaction.response.send_message(
            tr(locale, "Dream {filename} with which preset?", filename=source.filename),
            view=picker_view(self.bot, source.id, tr(locale, "Pick a preset")),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )


async def setup(bot: DreamBot) -> None:
    await bot.add_cog(DreamCog(bot))
