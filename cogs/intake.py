"""Intake: from a member's request to an accepted job, or a private one-line refusal.

Every path (`/dream` with a preset, a dropdown pick, the context menu,
`/compare`, `/layers`) ends in `start_dream`, which refuses what it can at once
(ephemeral, nothing queued), then defers, downloads, checks the image and hands
it to the dream service (`bot.dreams.accept`), which queues it and saves it
with its upload before the member is told "queued".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import discord
from discord.http import Route

from cogs.common import NO_MENTIONS, interaction_only, is_guild_admin, server_of
from cogs.i18n import tr
from cogs.refusals import refusal_text, service_message
from dream_engine.core.params import DreamParams, parse_channels, parse_layers
from dream_engine.core.presets import Preset, default_preset_for, get_preset
from dream_engine.errors import ImageError, ParamError, UserError
from dream_engine.media.clips import (
    ClipLimits,
    decode_clip,
    is_clip,
    side_within_budget,
)
from dream_engine.media.images import CLIP_CONTENT_TYPES, check_upload, decode_image
from dream_engine.motion.spec import MotionSpec
from dream_engine.service.guild_settings import GuildSettings
from dream_engine.service.job_store import JobRecord
from dream_engine.service.queue import GuildLimits
from dream_engine.service.quotas import QuotaRules
from dream_engine.service.scheduler import NOT_SAVED
from dream_engine.service.sources import ImageSource
from dream_engine.study.sweeps import Variant

if TYPE_CHECKING:
    from bot import DreamBot

log = logging.getLogger(__name__)

REQUEST_BYTES = 25 * 1024 * 1024  # Discord refuses a request with more attachments than this

#: Makes a comparison's variants from the preset and the member's parameters (/compare,
#: /layers); raises `ParamError` for text that does not parse, before anything is queued.
VariantMaker = Callable[[Preset, DreamParams], list[Variant]]


@dataclass(frozen=True)
class MotionAsk:
    """What `/dream` was asked about moving: a zoom (its frames, scale and turn), or for a
    clip upload how much of each dream to carry on (`blend`); and how to deliver it."""

    zoom: int | None = None  # frames of a zoom; None: no zoom
    zoom_factor: float | None = None
    rotate: float | None = None
    blend: float | None = None
    format: str | None = None  # mp4 (default) or gif

    @classmethod
    def asking_for(cls, motion: MotionSpec | None) -> MotionAsk:
        """What to ask for to move as `motion` did (Reroll): `zoom_spec`'s inverse for a
        zoom; a clip's frames come from its upload again."""
        if motion is None:
            return cls()
        if motion.kind == "zoom":
            return cls(zoom=motion.frames, zoom_factor=motion.zoom, rotate=motion.rotate,
                       format=motion.format)  # fmt: skip
        return cls(blend=motion.blend, format=motion.format)

    def zoom_spec(self) -> MotionSpec | None:
        """The zoom asked for, validated; None for none (its knobs alone are refused)."""
        if self.zoom is None:
            for name in ("zoom_factor", "rotate"):
                if getattr(self, name) is not None:
                    raise ParamError(
                        f"{name}: it sets how a zoom moves; give zoom:24 (frames) too."
                    )
            return None
        if self.blend is not None:
            raise ParamError("blend: it carries a clip's dream along its motion; a zoom has none.")
        return MotionSpec("zoom", frames=self.zoom).replace(
            zoom=self.zoom_factor, rotate=self.rotate, format=self.format
        )

    def clip_spec(self, frames: int, fps: float) -> MotionSpec:
        if self.zoom is not None:
            raise ParamError("zoom: this is a clip, which moves already; leave out zoom.")
        return MotionSpec("clip", frames=frames, fps=fps).replace(
            blend=self.blend, format=self.format
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            name: value for name, value in dataclasses.asdict(self).items() if value is not None
        }


@dataclass(frozen=True)
class Accepted:
    """What `precheck` let through: the job's preset, parameters and limits."""

    preset: Preset
    params: DreamParams
    max_side: int
    limits: GuildLimits
    variants: tuple[Variant, ...] = ()
    clip_limits: ClipLimits = field(default_factory=ClipLimits)
    zoom: MotionSpec | None = None  # a zoom asked for (a clip is known once downloaded)
    quotas: QuotaRules | None = None  # what the member's dreams here count against
    spoiler: bool = False  # the server posts every result as a spoiler
    server: int | None = None  # whose line and limits it counts in (`server_of`)


async def precheck(
    bot: DreamBot,
    interaction: discord.Interaction,
    source: ImageSource,
    preset_name: str | None,
    overrides: dict[str, Any],
    variants: VariantMaker | None = None,
    guide: ImageSource | None = None,
    motion: MotionAsk = MotionAsk(),
) -> Accepted | None:
    """Refuse at once (ephemeral) what needs no download; else what the job will run with.

    `guide`: a second attachment whose features the dream grows; it is checked by the
    same upload rules as the image, and its refusals say it is the guide.
    """
    server = server_of(interaction)
    try:
        settings = await bot.guild_settings.get(server) if server else None
        # In a thread, the parent channel is the one an admin allowed.
        channel_id = getattr(interaction.channel, "parent_id", None) or interaction.channel_id
        if settings and interaction.guild is not None:  # deleted while the bot was away
            alive = {c for c in settings.channels if interaction.guild.get_channel(c)}
            settings = replace(settings, channels=frozenset(alive))
        if settings and channel_id and not settings.allows_channel(channel_id):
            where = ", ".join(f"<#{channel}>" for channel in sorted(settings.channels))
            raise UserError(
                tr(
                    interaction.locale,
                    "Dreams are not made in this channel here. Try {where}.",
                    where=where,
                )
            )
        model = bot.executor.model_name
        preset = get_preset(preset_name or default_preset_for(model))
        if preset.model != model:
            raise ParamError(
                f"preset: '{preset.name}' is for the {preset.model} model; this bot runs {model}."
            )
        if isinstance(overrides.get("layers"), str):
            overrides = {**overrides, "layers": parse_layers(overrides["layers"])}
        if isinstance(overrides.get("channels"), str):
            overrides = {**overrides, "channels": parse_channels(overrides["channels"])}
        params = preset.params.replace(**overrides)
        if overrides.get("seed") is not None and not params.seed_matters:
            raise ParamError(
                "seed: a seed only changes the random shifts and views (jitter, scale_jitter, "
                f"rotate_jitter), and they are off in {preset.name}; give one too, e.g. "
                "jitter:32."
            )
        made = tuple(variants(preset, params)) if variants else ()
        check_upload(
            source.size, source.content_type, source.filename, bot.settings.max_upload_bytes,
            clips=not made,  # a comparison dreams a still
        )  # fmt: skip
        check_guide(bot, guide, preset, params, overrides)
        clip_limits = settings.clip_limits() if settings else bot.settings.clip_limits
        zoom = motion.zoom_spec()
        if zoom is not None and zoom.frames > clip_limits.max_frames:
            raise ParamError(
                f"zoom: {zoom.frames} frames; the limit here is {clip_limits.max_frames}."
            )
        limits = settings.limits() if settings else bot.settings.default_limits
        bot.queue.check(guild_id=server, user_id=interaction.user.id, limits=limits)
        quotas = quota_rules(bot, interaction, settings)
        if quotas is not None:
            # A read: the write that counts the dream comes after the answer (`start_dream`).
            await bot.quotas.reserve(server, interaction.user.id, quotas, record=False)
    except UserError as error:
        await interaction.response.send_message(
            refusal_text(error, interaction.locale), ephemeral=True, allowed_mentions=NO_MENTIONS
        )
        return None
    max_side = settings.max_side if settings else bot.settings.max_side
    spoiler = bool(settings and settings.spoiler)
    return Accepted(
        preset, params, max_side, limits, made, clip_limits, zoom, quotas, spoiler, server
    )


def quota_rules(
    bot: DreamBot, interaction: discord.Interaction, settings: GuildSettings | None
) -> QuotaRules | None:
    """What the member's dreams count against: their server's rules (unless exempt), or
    outside servers the bot is in the bot owner's (`DREAM_USER_DAILY_LIMIT`, `_COOLDOWN`)."""
    if settings is None:
        return bot.settings.user_quota_rules
    return None if quota_exempt(interaction, settings) else settings.quota_rules()


def quota_exempt(interaction: discord.Interaction, settings: GuildSettings) -> bool:
    """Admins, and members with a role the server exempts, skip the daily limit and cooldown."""
    roles = {role.id for role in getattr(interaction.user, "roles", ())}
    return is_guild_admin(interaction) or bool(roles & settings.exempt_roles)


def check_picture(
    data: bytes, checked: Accepted, ask: MotionAsk, max_pixels: int, *, extras: list[str]
) -> tuple[MotionSpec | None, int]:
    """The upload decoded as the job will be: a still (a zoom's start) or a clip, each
    frame; what makes it move, and the side it is dreamed at (a moving dream smaller,
    to fit the server's pixel budget). Raises the refusal, for the member's eyes."""
    if is_clip(data):
        if checked.variants:
            raise ImageError("A comparison dreams a still picture; this is a clip.")
        if extras:
            raise ParamError(
                f"{extras[0]}: a clip is posted as the dreamed clip itself; leave out {extras[0]}."
            )
        # Decoded now, so a damaged stream is refused before anything is queued.
        clip = decode_clip(data, checked.clip_limits, checked.max_side)
        return ask.clip_spec(len(clip.frames), clip.fps), max(clip.size)
    for name in ("blend", "format"):
        if checked.zoom is None and getattr(ask, name) is not None:
            raise ParamError(
                f"{name}: it is for a moving dream; this is a still picture (give zoom:24 to "
                "zoom into it)."
            )
    image = decode_image(data, max_pixels=max_pixels)
    if checked.zoom is None:
        return None, checked.max_side
    if extras:
        raise ParamError(
            f"{extras[0]}: a zoom is posted as the clip itself; leave out {extras[0]}."
        )
    frames = checked.zoom.frames
    return checked.zoom, side_within_budget(image.size, frames, checked.clip_limits,
                                            checked.max_side)  # fmt: skip


def check_guide(
    bot: DreamBot,
    guide: ImageSource | None,
    preset: Preset,
    params: DreamParams,
    overrides: dict[str, Any],
) -> None:
    """A guide is checked like the image and needs layers to be matched at; a
    guide_weight with no guide to weigh would change nothing, so it is refused.
    (Every variant a bot's comparison makes has layers: a layer each, or a preset's.)"""
    if guide is None:
        if overrides.get("guide_weight") is not None:
            raise ParamError("guide_weight: it weighs a guide image; attach one as guide.")
        return
    if not params.active_layers():
        raise ParamError(
            f"guide: a guide is matched at the weighted layers, and {preset.name} has none "
            "here; give some, e.g. layers:mixed4=1."
        )
    try:
        check_upload(guide.size, guide.content_type, guide.filename, bot.settings.max_upload_bytes)
    except ImageError as error:
        raise as_guide_error(error) from None


def as_guide_error(error: ImageError) -> ImageError:
    """The same refusal, saying that it is the guide's."""
    return type(error)(f"guide: {error}")


async def start_dream(
    bot: DreamBot,
    interaction: discord.Interaction,
    source: ImageSource,
    *,
    preset_name: str,
    overrides: dict[str, Any],
    gallery: bool = False,
    animate: bool = False,
    variants: VariantMaker | None = None,
    title: str | None = None,
    guide: ImageSource | None = None,
    motion: MotionAsk = MotionAsk(),
    spoiler: bool = False,
) -> None:
    """Accept a dream (or, with `variants`, a comparison in one grid) and queue it;
    `guide` steers it (downloaded and checked like the image, kept with the job, and
    remembered like the image for Reroll); `motion` makes it move (a zoom, or how a clip
    upload is dreamed)."""
    checked = await precheck(
        bot, interaction, source, preset_name, overrides, variants, guide, motion
    )
    if checked is None:
        return
    await interaction.response.defer(thinking=True)
    reservation = None
    try:
        if checked.quotas is not None:  # counted now; given back if refused below
            reservation = await bot.quotas.reserve(
                checked.server, interaction.user.id, checked.quotas
            )
        if source.id is None:  # kept for "Dream again with…"; after the ack, not before
            source = await bot.sources.save(source)
        data = await download(bot, source)
        # The bytes, not the attachment's word for them, must be within the limit.
        check_upload(len(data), None, source.filename, bot.settings.max_upload_bytes)
        # Refuse a bad image (or clip) now, not when its turn comes; the bytes are kept.
        moving, side = await asyncio.to_thread(
            check_picture, data, checked, motion, bot.settings.max_pixels,
            extras=[name for name, on in (("gallery", gallery), ("animate", animate)) if on],
        )  # fmt: skip
        guide_data = None if guide is None else await downloaded_guide(bot, guide)
        if guide is not None and guide.id is None:
            guide = await bot.sources.save(guide)
        saved_source, saved_guide = source, guide

        def record_for(job_id: str) -> JobRecord:
            record = job_record(job_id, interaction, checked, saved_source, gallery, bot)
            return replace(
                record, title=title, animate=animate, motion=moving, max_side=side,
                spoiler=spoiler or checked.spoiler,
                guide_name=None if saved_guide is None else saved_guide.filename,
                guide_source_id=None if saved_guide is None else saved_guide.id,
            )  # fmt: skip

        await bot.dreams.accept(
            guild_id=checked.server, user_id=interaction.user.id,
            channel_id=interaction.channel_id or 0, limits=checked.limits,
            record_for=record_for, image=data, guide=guide_data,
        )  # fmt: skip
    except Exception as error:
        await bot.quotas.release(reservation)  # refused: it does not count
        if not isinstance(error, UserError):  # the disk refused the source, or a bug
            log.exception("could not accept a dream from %s", interaction.user.id)
        # Nothing was queued: swap the public "thinking…" for a private explanation.
        with contextlib.suppress(discord.HTTPException):
            await interaction.delete_original_response()
        await interaction.followup.send(
            refusal_text(error, interaction.locale)
            if isinstance(error, UserError)
            else service_message(NOT_SAVED, interaction.locale),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )


def job_record(
    job_id: str,
    interaction: discord.Interaction,
    checked: Accepted,
    source: ImageSource,
    gallery: bool,
    bot: DreamBot,
) -> JobRecord:
    """What is saved about an accepted job: enough to run and deliver it after a restart."""
    upload_limit = min(interaction.filesize_limit or 10 * 1024 * 1024, REQUEST_BYTES)
    return JobRecord(
        id=job_id, guild_id=interaction.guild_id, channel_id=interaction.channel_id or 0,
        user_id=interaction.user.id, user_name=interaction.user.display_name,
        application_id=interaction.application_id, token=interaction.token,
        # From when the member asked (the token's clock), not from after the download.
        token_expires_at=(
            interaction.created_at.timestamp() + bot.settings.interaction_lifetime
        ),
        upload_limit=upload_limit, preset=checked.preset.name, params=checked.params,
        changed=changed_for_all(checked), gallery=gallery,
        source_id=source.id, max_side=checked.max_side, variants=checked.variants,
        interaction_only=interaction_only(interaction),
        locale=str(interaction.locale),  # the job's messages, even after a restart, read in it
    )  # fmt: skip


async def downloaded_guide(bot: DreamBot, guide: ImageSource) -> bytes:
    """The guide's bytes, checked like the image's; a refusal says it is the guide's."""
    try:
        data = await download(bot, guide)
        check_upload(len(data), None, guide.filename, bot.settings.max_upload_bytes)
        await asyncio.to_thread(decode_image, data, max_pixels=bot.settings.max_pixels)
    except ImageError as error:
        raise as_guide_error(error) from None
    return data


async def download(bot: DreamBot, source: ImageSource) -> bytes:
    try:
        return await asyncio.wait_for(fetch(bot, source.url), bot.settings.download_timeout)
    except TimeoutError:
        raise ImageError(
            "Downloading your image from Discord timed out. Please try again."
        ) from None
    except discord.HTTPException as error:
        raise ImageError(
            f"Discord would not give me your image (HTTP {error.status}); attach it again."
        ) from None
    except (aiohttp.ClientError, OSError):  # the connection broke: dropped, reset, refused
        raise ImageError(
            "Downloading your image from Discord failed (the connection broke). Please try again."
        ) from None


async def fetch(bot: DreamBot, url: str) -> bytes:
    """The file at a CDN link. Discord's links are signed and expire after about a day,
    while "Dream again with…" stays under a result for a week: an expired link (404)
    is signed again once (POST /attachments/refresh-urls) and fetched anew."""
    try:
        return await bot.http.get_from_cdn(url)
    except discord.NotFound:
        route = Route("POST", "/attachments/refresh-urls")
        answer = await bot.http.request(route, json={"attachment_urls": [url]})
        fresh = next(
            (link["refreshed"] for link in answer.get("refreshed_urls", [])
             if link.get("original") == url and link.get("refreshed") not in (None, url)),
            None,
        )  # fmt: skip
        if fresh is None:
            raise
        return await bot.http.get_from_cdn(fresh)


def attached(interaction: discord.Interaction, attachment: discord.Attachment) -> ImageSource:
    """A command's attachment (the image, a guide) as a source the intake checks."""
    return ImageSource.unsaved(
        url=attachment.url, filename=attachment.filename, size=attachment.size,
        content_type=attachment.content_type, guild_id=interaction.guild_id,
        user_id=interaction.user.id,
    )  # fmt: skip


def takes(bot: DreamBot, source: ImageSource) -> bool:
    """Whether a picture passes the checks made before downloading."""
    try:
        check_upload(
            source.size, source.content_type, source.filename, bot.settings.max_upload_bytes,
            clips=True,
        )  # fmt: skip
    except ImageError:
        return False
    return True


def pictures_in(
    message: discord.Message, *, guild_id: int | None, user_id: int
) -> list[ImageSource]:
    """The pictures of a message, attachments first, then what its embeds show. An embed's
    picture is fetched through Discord's media proxy (`proxy_url`, which Discord itself
    sets), never from the address the embed names; its size is learnt by downloading."""
    found = [
        ImageSource.unsaved(
            url=a.url,
            filename=a.filename,
            size=a.size,
            content_type=a.content_type,
            guild_id=guild_id,
            user_id=user_id,
        )
        for a in message.attachments
        if (a.content_type or "image/").startswith("image/")
        or (a.content_type or "").split(";")[0] in CLIP_CONTENT_TYPES  # a clip, dreamed as one
    ]
    for embed in message.embeds:
        for media in (embed.image, embed.thumbnail):
            if media.proxy_url:
                name = PurePosixPath(urlsplit(media.url or media.proxy_url).path).name
                found.append(
                    ImageSource.unsaved(
                        url=media.proxy_url,
                        filename=name or "image",
                        size=None,
                        content_type=None,
                        guild_id=guild_id,
                        user_id=user_id,
                    )
                )
    return found


def changed_for_all(checked: Accepted) -> dict[str, Any]:
    """What the member changed from the preset, where every tile of a comparison kept it."""
    changed = checked.params.differences(checked.preset.params)
    for variant in checked.variants:
        kept = variant.params.differences(checked.params)
        changed = {key: value for key, value in changed.items() if key not in kept}
    return changed
