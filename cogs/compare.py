"""`/compare` and `/layers`: the study's comparisons in one command, answered with one grid.

A comparison is one job like any dream: it waits in the same fair queue, counts
once against the member's limit, shows one progress bar (variant, octave,
step) and survives a restart. The variants are made and checked here, before
anything is queued, so a typo in `vary:` is a private one-line answer; the
dreaming and the grid happen on the executor (`dream_engine.study.sweeps`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import NO_MENTIONS, preset_choices
from cogs.i18n import tr
from cogs.intake import attached, start_dream
from dream_engine.core.params import DreamParams
from dream_engine.core.presets import Preset, default_preset_for
from dream_engine.errors import ParamError
from dream_engine.study.sweeps import (
    VARY_SYNTAX,
    Variant,
    layer_variants,
    parse_vary,
    preset_variants,
)

if TYPE_CHECKING:
    from bot import DreamBot


class CompareCog(commands.Cog):
    def __init__(self, bot: DreamBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="compare", description="Dream one image several ways and get one labelled grid"
    )
    @app_commands.describe(
        image="The picture to dream",
        vary="One knob, several values, e.g. step=0.005,0.05 or layers=mixed3,mixed5",
        presets="Or several presets, e.g. lower-layers,upper-layers",
        preset="The preset the variants start from (default: balanced)",
        octaves="Octaves for every variant (1-10)",
        iterations="Steps per octave for every variant (1-1000)",
        gallery="Also post each variant at full size",
        guide="A second image whose shapes and textures every variant grows",
    )
    async def compare(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        vary: app_commands.Range[str, 1, 500] | None = None,
        presets: app_commands.Range[str, 1, 500] | None = None,
        preset: str | None = None,
        octaves: app_commands.Range[int, 1, 10] | None = None,
        iterations: app_commands.Range[int, 1, 1000] | None = None,
        gallery: bool = False,
        guide: discord.Attachment | None = None,
    ) -> None:
        if (vary is None) == (presets is None):
            await interaction.response.send_message(
                tr(
                    interaction.locale,
                    "Give either `vary:` (one knob, several values: {syntax}) or `presets:` "
                    "(e.g. lower-layers,upper-layers), not both.",
                    syntax=VARY_SYNTAX,
                ),
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
            return
        overrides = {"octaves": octaves, "iterations": iterations}
        limit = self.bot.settings.max_variants
        model = self.bot.executor.model_name
        given = {key: value for key, value in overrides.items() if value is not None}
        if vary is not None:

            def variants(_preset: Preset, params: DreamParams) -> list[Variant]:
                made = parse_vary(vary, params, max_variants=limit, guided=guide is not None)
                _refuse_varied_options(given, made)
                return made

            title = None  # the grid says what the variants share
        else:
            if preset is not None:
                await interaction.response.send_message(
                    tr(
                        interaction.locale,
                        "`presets:` names every preset to run; leave out `preset:` "
                        "(use `octaves:` or `iterations:` to change them all).",
                    ),
                    ephemeral=True,
                    allowed_mentions=NO_MENTIONS,
                )
                return

            def variants(_preset: Preset, _params: DreamParams) -> list[Variant]:
                return preset_variants(presets, given, model=model, max_variants=limit)

            names = [name.strip() for name in presets.split(",") if name.strip()]
            title = " vs ".join(names)  # the job is named after what it runs
        await self._start(interaction, image, preset, overrides, gallery, variants, title, guide)

    @app_commands.command(
        name="layers", description="What does each layer see? One image, one layer at a time"
    )
    @app_commands.describe(
        image="The picture to dream",
        preset="The octave schedule to use (default: balanced)",
        octaves="Octaves for every layer (1-10)",
        iterations="Steps per octave for every layer (1-1000)",
        gallery="Also post each layer's dream at full size",
        guide="A second image whose shapes and textures each layer grows",
    )
    async def layers(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        preset: str | None = None,
        octaves: app_commands.Range[int, 1, 10] | None = None,
        iterations: app_commands.Range[int, 1, 1000] | None = None,
        gallery: bool = False,
        guide: discord.Attachment | None = None,
    ) -> None:
        model = self.bot.executor.model_name

        def variants(_preset: Preset, params: DreamParams) -> list[Variant]:
            return layer_variants(model, params)

        overrides = {"octaves": octaves, "iterations": iterations}
        title = "one layer at a time"
        await self._start(interaction, image, preset, overrides, gallery, variants, title, guide)

    @compare.autocomplete("preset")
    @layers.autocomplete("preset")
    async def _preset_autocomplete(self, interaction: discord.Interaction, current: str):
        return preset_choices(self.bot, current)

    async def _start(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        preset: str | None,
        overrides: dict[str, Any],
        gallery: bool,
        variants: Any,
        title: str | None,
        guide: discord.Attachment | None,
    ) -> None:
        await start_dream(
            self.bot, interaction, attached(interaction, image),
            preset_name=preset or default_preset_for(self.bot.executor.model_name),
            overrides=overrides,
            gallery=gallery, variants=variants, title=title,
            guide=None if guide is None else attached(interaction, guide),
        )  # fmt: skip


def _refuse_varied_options(given: dict[str, Any], variants: list[Variant]) -> None:
    """`octaves:2 vary:octaves=1,3` asks for two things at once; no tile would have 2."""
    for name, value in given.items():
        if any(getattr(variant.params, name) != value for variant in variants):
            raise ParamError(
                f"{name}: `vary:` sets it for each tile; leave out `{name}:` or stop varying it."
            )


async def setup(bot: DreamBot) -> None:
    await bot.add_cog(CompareCog(bot))
