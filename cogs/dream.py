"""`/dream`, the preset dropdown, "Dream this image", and the life of a job in Discord.

Every path (slash command with a preset, dropdown pick, context menu) ends in
`DreamCog.start`, which refuses what it can at once (ephemeral, nothing
queued), then defers, downloads, checks the image, queues, and saves the job
(with its upload) before it says "queued": from then on a restart loses
nothing. Workers take jobs in the queue's fair order and run them on the
executor; the job's original response is edited along the way: place in line,
progress bar, result. When the interaction token is dead (15 minutes), the
result goes to the channel with a mention instead (`cogs/replies.py`).

At start-up the jobs a previous run left are put back in line. At shutdown the
waiting ones stay saved, and a running one gets `shutdown_grace` seconds to
finish before it is paused and saved for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands
from discord.http import Route

from cogs.common import (
    NO_MENTIONS,
    duration,
    is_guild_admin,
    ordinal,
    preset_choices,
    presets_for,
    progress_bar,
    target_choices,
)
from cogs.replies import JobReply
from dream_engine.core.params import DreamParams, parse_channels, parse_layers
from dream_engine.core.presets import DEFAULT_PRESET, Preset, default_preset_for, get_preset
from dream_engine.errors import DreamCancelled, ImageError, ParamError, UserError
from dream_engine.media.animation import encode_gif_to_fit, suggest_frame_every
from dream_engine.media.images import check_upload, decode_image, encode_to_fit
from dream_engine.runtime.executor import DreamFailed, DreamRequest
from dream_engine.service.job_store import JobRecord
from dream_engine.service.queue import CancelOutcome, GuildLimits, Job, JobState, QueueClosed
from dream_engine.service.sources import ImageSource
from dream_engine.study.sweeps import Variant

if TYPE_CHECKING:
    from PIL import Image

    from bot import DreamBot
    from dream_engine.core.results import DreamResult, Progress

log = logging.getLogger(__name__)

REQUEST_BYTES = 25 * 1024 * 1024  # Discord refuses a request with more attachments than this
# The upload limit (the server's, at most REQUEST_BYTES) is for all of one message's files.
FILES_PER_MESSAGE = 10
GIF_FRAMES = 48  # animate:true: about this many frames across the whole dream
GOODBYE_GRACE = 10.0  # seconds paused dreams get to say so at shutdown
NO_WORKERS = (
    "⏸️ The dream workers can't be reached right now; your dream keeps its place and will "
    "start when they are back."
)
NO_WORKERS_RUNNING = (
    "⏸️ The dream workers can't be reached right now; this dream is kept and goes on when "
    "they are back."
)
NOT_SAVED = "⚠️ I could not save this dream, so it was not queued. Please try again."


@dataclass
class DreamJob:
    """A job in line (the queue's opaque payload): its saved record and how to reach its member.

    The upload is not kept here but in the job store, read back when the job
    runs: a long queue of phone photos costs disk, not memory.
    """

    record: JobRecord
    reply: JobReply
    resumed: bool = False  # put back in line after a restart
    started_at: float | None = None
    shown_position: int | None = None
    edit_task: asyncio.Task[bool] | None = None  # the progress edit in flight, if any
    latest: Progress | None = None
    engine_done: bool = False  # the executor has answered (a result or a failure)
    posted: bool = False  # the dream itself is up (the gallery may still be on its way)
    cancelled_by_user: bool = False  # a stop at shutdown pauses the job; a member's cancels it
    # Resolved once the job is on disk (True) or could not be saved (False); a worker
    # that takes the job sooner waits for it, so nothing runs that a restart would lose.
    saved: asyncio.Future[bool] = field(default_factory=asyncio.Future)

    @property
    def job_id(self) -> str:
        return self.record.id

    @property
    def preset(self) -> str:
        return self.record.preset

    @property
    def params(self) -> DreamParams:
        return self.record.params

    @property
    def name(self) -> str:
        """Plain words for what it runs: its preset, or what a comparison compares."""
        return (self.record.title or self.preset) if self.record.variants else self.preset

    @property
    def what(self) -> str:
        """The job in a few words, for its messages."""
        if self.record.variants:
            return f"a comparison of {len(self.record.variants)} (**{self.name}**)"
        return f"**{self.name}**"


@dataclass(frozen=True)
class _Accepted:
    """What `_precheck` let through: the job's preset, parameters and limits."""

    preset: Preset
    params: DreamParams
    max_side: int
    limits: GuildLimits
    variants: tuple[Variant, ...] = ()


#: Makes a comparison's variants from the preset and the member's parameters (/compare,
#: /layers); raises `ParamError` for text that does not parse, before anything is queued.
VariantMaker = Callable[[Preset, DreamParams], list[Variant]]


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
        cog: DreamCog = interaction.client.get_cog("DreamCog")  # type: ignore[union-attr,assignment]
        await cog.cancel(interaction, self.job_id)


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
        cog: DreamCog = interaction.client.get_cog("DreamCog")  # type: ignore[union-attr,assignment]
        source = await cog.bot.sources.get(self.source_id)
        if source is None:
            await interaction.response.send_message(
                "That image is no longer remembered; attach it again with /dream.", ephemeral=True
            )
            return
        asked = (source.options or {}) if self.asked else {}
        await cog.start(
            interaction, source, preset_name=self.item.values[0],
            overrides=asked.get("overrides", {}), gallery=asked.get("gallery", False),
            animate=asked.get("animate", False),
        )  # fmt: skip


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


class DreamCog(commands.Cog):
    def __init__(self, bot: DreamBot) -> None:
        self.bot = bot
        self._workers: list[asyncio.Task[None]] = []  # one per unit of executor capacity
        self._idle: set[asyncio.Task[None]] = set()  # workers waiting for a job
        self._worker_names = itertools.count()
        self._positions_changed = asyncio.Event()
        self._refresher: asyncio.Task[None] | None = None
        self._stopping = False
        self._capacity: int | None = None  # the executor's, as last seen
        self.context_menu = app_commands.ContextMenu(
            name="Dream this image", callback=self.dream_this
        )
        self.bot.tree.add_command(self.context_menu)

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(CancelButton, PresetPicker)
        self.bot.queue.on_change = self._positions_changed.set
        await self._resume()  # before any worker or interaction: old jobs keep their turn
        self.bot.executor.on_capacity_change = self._fit_workers
        self._fit_workers()
        self._refresher = asyncio.create_task(self._refresh_positions(), name="dream-positions")

    async def _resume(self) -> None:
        """Put back in line, in accept order, every job a previous run left unfinished."""
        resumed = await self.bot.jobs.resume()
        for record, why in resumed.given_up:
            log.warning("job %s given up: %s", record.id, why)
            await self._say(DreamJob(record, JobReply(self.bot, record)), f"⚠️ Sorry: {why}.")
        for record in resumed.jobs:
            dream_job = DreamJob(record, JobReply(self.bot, record), resumed=True)
            dream_job.saved.set_result(True)
            self.bot.queue.restore(
                job_id=record.id, guild_id=record.guild_id, user_id=record.user_id,
                channel_id=record.channel_id, payload=dream_job,
            )  # fmt: skip
        if resumed.jobs or resumed.given_up:
            log.info(
                "resumed %d job(s) from the last run; gave up %d",
                len(resumed.jobs), len(resumed.given_up),
            )  # fmt: skip

    async def cog_unload(self) -> None:
        """Shut down without losing a job: waiting ones stay saved, a running one may finish.

        The queue closes first (no new jobs; idle workers leave). A running dream
        gets `shutdown_grace` seconds to finish and be delivered; after that it is
        stopped and saved as waiting, so the next start runs it again.
        """
        self.bot.tree.remove_command(self.context_menu.name, type=self.context_menu.type)
        self._stopping = True
        for job in self.bot.queue.close():
            await self._say(
                job.payload,
                "⏸️ The dream bot is restarting. Your dream keeps its place and will start "
                "when the bot is back; there is nothing you need to do.",
                or_channel=False,  # one restart must not ping everyone who waits
            )
        workers = [task for task in self._workers if not task.done()]
        if workers:
            _done, workers = await asyncio.wait(workers, timeout=self.bot.settings.shutdown_grace)
        if workers:
            for job in self.bot.queue.running():
                job.cancel_event.set()  # the engine stops at its next check; the job is paused
            _done, workers = await asyncio.wait(workers, timeout=GOODBYE_GRACE)
        for task in [*workers, self._refresher]:
            if task is not None:
                task.cancel()
        if workers:  # a stuck executor: the cancelled workers still pause their jobs
            await asyncio.wait(workers, timeout=GOODBYE_GRACE)

    async def cancel(self, interaction: discord.Interaction, job_id: str) -> None:
        """Cancel for the caller (owner, or admin of the job's server) and say what happened.

        A running job stops at the engine's next check and its worker reports it;
        a waiting one is gone at once, so its message is updated here.
        """
        job = self.bot.queue.get(job_id)
        outcome = self.bot.queue.cancel(
            job_id,
            by_user=interaction.user.id,
            admin_of_guild=interaction.guild_id if is_guild_admin(interaction) else None,
        )
        message = outcome.message
        if outcome is CancelOutcome.STOPPING and job is not None:
            if job.payload.engine_done:  # only the posting is left: it can't be taken back
                message = "That dream has already finished; it is being posted."
            else:
                job.payload.cancelled_by_user = True
        await interaction.response.send_message(message, ephemeral=True)
        if outcome is CancelOutcome.CANCELLED and job is not None:
            await self.bot.jobs.finish(job_id, JobState.CANCELLED, "cancelled while waiting")
            await self._say(job.payload, "Cancelled before it started. Nothing was posted.")

    # -- commands ------------------------------------------------------------------------

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
        target="A class to make the network find, e.g. golden retriever",
        channels="Single feature channels to dream, e.g. mixed4:97,mixed5:12",
        animate="Also post a GIF of the dream forming",
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
        target: app_commands.Range[str, 1, 100] | None = None,
        channels: app_commands.Range[str, 1, 500] | None = None,
        animate: bool = False,
    ) -> None:
        overrides = {
            "octaves": octaves, "octave_scale": octave_scale, "step": step,
            "iterations": iterations, "max_loss": max_loss, "jitter": jitter, "seed": seed,
            "layers": layers, "target": target, "channels": channels,
        }  # fmt: skip
        source = ImageSource.unsaved(
            url=image.url, filename=image.filename, size=image.size,
            content_type=image.content_type, guild_id=interaction.guild_id,
            user_id=interaction.user.id,
        )  # fmt: skip
        if preset is None:
            if not await self._precheck(interaction, source, None, overrides):
                return
            given = {name: value for name, value in overrides.items() if value is not None}
            asked = {"overrides": given, "gallery": gallery, "animate": animate}
            # The dropdown needs the image's id, and keeps what else was asked with it.
            source = await self.bot.sources.save(replace(source, options=asked))
            await interaction.response.send_message(
                "Pick a preset to dream this image with:",
                view=picker_view(self.bot, source.id, "Pick a preset", asked=True),
                ephemeral=True,
            )
            return
        await self.start(
            interaction, source, preset_name=preset, overrides=overrides, gallery=gallery,
            animate=animate,
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
        found = _pictures_in(message, guild_id=interaction.guild_id, user_id=interaction.user.id)
        source = next((s for s in found if self._takes(s)), found[0] if found else None)
        if source is None:
            await interaction.response.send_message(
                "That message has no image attached. Use it on a message with a picture.",
                ephemeral=True,
            )
            return
        if not await self._precheck(interaction, source, None, {}):
            return
        source = await self.bot.sources.save(source)
        await interaction.response.send_message(
            f"Dream {source.filename} with which preset?",
            view=picker_view(self.bot, source.id, "Pick a preset"),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    def _takes(self, source: ImageSource) -> bool:
        """Whether a picture passes the checks made before downloading."""
        try:
            check_upload(
                source.size, source.content_type, source.filename,
                self.bot.settings.max_upload_bytes,
            )  # fmt: skip
        except ImageError:
            return False
        return True

    # -- accepting a job -----------------------------------------------------------------

    async def _precheck(
        self,
        interaction: discord.Interaction,
        source: ImageSource,
        preset_name: str | None,
        overrides: dict[str, Any],
        variants: VariantMaker | None = None,
    ) -> _Accepted | None:
        """Refuse at once (ephemeral) what needs no download; else what the job will run with."""
        try:
            settings = (
                await self.bot.guild_settings.get(interaction.guild_id)
                if interaction.guild_id
                else None
            )
            # In a thread, the parent channel is the one an admin allowed.
            channel_id = getattr(interaction.channel, "parent_id", None) or interaction.channel_id
            if settings and interaction.guild is not None:  # deleted while the bot was away
                alive = {c for c in settings.channels if interaction.guild.get_channel(c)}
                settings = replace(settings, channels=frozenset(alive))
            if settings and channel_id and not settings.allows_channel(channel_id):
                where = ", ".join(f"<#{channel}>" for channel in sorted(settings.channels))
                raise UserError(f"Dreams are not made in this channel here. Try {where}.")
            preset = get_preset(preset_name or default_preset_for(self.bot.executor.model_name))
            if preset.model != self.bot.executor.model_name:
                raise ParamError(
                    f"preset: '{preset.name}' is for the {preset.model} model; this bot runs "
                    f"{self.bot.executor.model_name}."
                )
            if isinstance(overrides.get("layers"), str):
                overrides = {**overrides, "layers": parse_layers(overrides["layers"])}
            if isinstance(overrides.get("channels"), str):
                overrides = {**overrides, "channels": parse_channels(overrides["channels"])}
            params = preset.params.replace(**overrides)
            if overrides.get("seed") is not None and not params.seed_matters:
                raise ParamError(
                    "seed: a seed only changes the random shifts (jitter), and they are off "
                    f"in {preset.name}; give jitter too, e.g. jitter:32."
                )
            made = tuple(variants(preset, params)) if variants else ()
            check_upload(
                source.size,
                source.content_type,
                source.filename,
                self.bot.settings.max_upload_bytes,
            )
            limits = settings.limits() if settings else self.bot.settings.default_limits
            self.bot.queue.check(
                guild_id=interaction.guild_id, user_id=interaction.user.id, limits=limits
            )
        except UserError as error:
            await interaction.response.send_message(
                str(error), ephemeral=True, allowed_mentions=NO_MENTIONS
            )
            return None
        max_side = settings.max_side if settings else self.bot.settings.max_side
        return _Accepted(preset, params, max_side, limits, made)

    async def start(
        self,
        interaction: discord.Interaction,
        source: ImageSource,
        *,
        preset_name: str,
        overrides: dict[str, Any],
        gallery: bool = False,
        animate: bool = False,
        variants: VariantMaker | None = None,
        title: str | None = None,
    ) -> None:
        """Accept a dream (or, with `variants`, a comparison in one grid) and queue it."""
        checked = await self._precheck(interaction, source, preset_name, overrides, variants)
        if checked is None:
            return
        await interaction.response.defer(thinking=True)
        try:
            if source.id is None:  # kept for "Dream again with…"; after the ack, not before
                source = await self.bot.sources.save(source)
            data = await self._download(source)
            # The bytes, not the attachment's word for them, must be within the limit.
            check_upload(len(data), None, source.filename, self.bot.settings.max_upload_bytes)
            # Refuse a bad image now, not when its turn comes; the bytes are what is kept.
            await asyncio.to_thread(decode_image, data, max_pixels=self.bot.settings.max_pixels)
            job = self.bot.queue.submit(
                guild_id=interaction.guild_id, user_id=interaction.user.id,
                channel_id=interaction.channel_id or 0, payload=None, limits=checked.limits,
            )  # fmt: skip
        except Exception as error:
            if not isinstance(error, UserError):  # the disk refused the source, or a bug
                log.exception("could not accept a dream from %s", interaction.user.id)
            # Nothing was queued: swap the public "thinking…" for a private explanation.
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
            await interaction.followup.send(
                str(error) if isinstance(error, UserError) else NOT_SAVED,
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
            return
        # The payload needs the id `submit` chose; no await in between, so no worker sees None.
        record = self._record(job, interaction, checked, source, gallery)
        record = replace(record, title=title, animate=animate)
        job.payload = DreamJob(record, JobReply(self.bot, record))
        try:
            await self.bot.jobs.add(record, data)
        except Exception:
            log.exception("could not save job %s", job.id)
            job.payload.saved.set_result(False)
            if self.bot.queue.cancel(job.id, by_user=job.user_id) is CancelOutcome.CANCELLED:
                await self._say(job.payload, NOT_SAVED)
            return  # else a worker holds it already, and says so
        job.payload.saved.set_result(True)
        await self._show_position(job)

    def _record(
        self,
        job: Job,
        interaction: discord.Interaction,
        checked: _Accepted,
        source: ImageSource,
        gallery: bool,
    ) -> JobRecord:
        """What is saved about an accepted job: enough to run and deliver it after a restart."""
        upload_limit = min(interaction.filesize_limit or 10 * 1024 * 1024, REQUEST_BYTES)
        return JobRecord(
            id=job.id, guild_id=job.guild_id, channel_id=job.channel_id, user_id=job.user_id,
            user_name=interaction.user.display_name, application_id=interaction.application_id,
            token=interaction.token,
            # From when the member asked (the token's clock), not from after the download.
            token_expires_at=(
                interaction.created_at.timestamp() + self.bot.settings.interaction_lifetime
            ),
            upload_limit=upload_limit, preset=checked.preset.name, params=checked.params,
            changed=_changed_for_all(checked), gallery=gallery,
            source_id=source.id, max_side=checked.max_side, variants=checked.variants,
        )  # fmt: skip

    async def _download(self, source: ImageSource) -> bytes:
        try:
            return await asyncio.wait_for(
                self._fetch(source.url), self.bot.settings.download_timeout
            )
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
                "Downloading your image from Discord failed (the connection broke). "
                "Please try again."
            ) from None

    async def _fetch(self, url: str) -> bytes:
        """The file at a CDN link. Discord's links are signed and expire after about a day,
        while "Dream again with…" stays under a result for a week: an expired link (404)
        is signed again once (POST /attachments/refresh-urls) and fetched anew."""
        try:
            return await self.bot.http.get_from_cdn(url)
        except discord.NotFound:
            route = Route("POST", "/attachments/refresh-urls")
            answer = await self.bot.http.request(route, json={"attachment_urls": [url]})
            fresh = next(
                (link["refreshed"] for link in answer.get("refreshed_urls", [])
                 if link.get("original") == url and link.get("refreshed") not in (None, url)),
                None,
            )  # fmt: skip
            if fresh is None:
                raise
            return await self.bot.http.get_from_cdn(fresh)

    # -- showing a job ---------------------------------------------------------------------

    async def _show_position(self, job: Job) -> None:
        dream_job: DreamJob = job.payload
        position = self.bot.queue.position(job.id)
        saved = dream_job.saved.done() and dream_job.saved.result()
        if position is None or not saved:  # "Queued" is a promise the disk must keep first
            return
        dream_job.shown_position = position
        waiting = f"{ordinal(position)} in line" if position > 1 else "next in line"
        back = " (back after a restart)" if dream_job.resumed else ""
        outage = f"\n{NO_WORKERS}" if self._capacity == 0 else ""
        await self._edit(
            dream_job,
            content=f"🌙 Queued {dream_job.what}: {waiting}{back}.{outage}",
            view=self._cancel_view(dream_job),
        )

    async def _refresh_positions(self) -> None:
        """Keep every "3rd in line" true, at most one edit per job per progress interval."""
        while True:
            await self._positions_changed.wait()
            self._positions_changed.clear()
            for job_id, position in self.bot.queue.positions().items():
                job = self.bot.queue.get(job_id)
                if job is not None and job.payload.shown_position != position:
                    await self._show_position(job)
            await asyncio.sleep(self.bot.settings.progress_interval)

    def _cancel_view(self, dream_job: DreamJob) -> discord.ui.View:
        view = discord.ui.View(timeout=None)
        view.add_item(CancelButton(dream_job.job_id))
        return view

    async def _edit(self, dream_job: DreamJob, **fields: Any) -> bool:
        """Edit the job's original response; False once its token is dead."""
        return await dream_job.reply.edit(**fields)

    async def _say(self, dream_job: DreamJob, text: str, *, or_channel: bool = True) -> None:
        """A final word on a job that has no result: in place, or in the channel (where it
        pings its member, so not for news that needs nothing from them)."""
        await _settle(dream_job)
        edited = await self._edit(dream_job, content=text, view=None, embed=None, attachments=[])
        if not edited and or_channel:
            try:
                await dream_job.reply.to_channel(text)
            except discord.HTTPException as error:
                log.warning("could not tell the owner of job %s: %s", dream_job.job_id, error)

    # -- running jobs -----------------------------------------------------------------------

    def _fit_workers(self) -> None:
        """One worker task per dream the executor can run at once, as that number changes
        (a Ray cluster grows and shrinks): new tasks start now; surplus ones leave, idle
        ones at once, busy ones after their job. A job is only taken by a free worker."""
        self._workers = [task for task in self._workers if not task.done()]
        if self._stopping:
            return
        self._notice_outage(self.bot.executor.capacity)
        surplus = len(self._workers) - self.bot.executor.capacity
        for task in [task for task in self._workers if task in self._idle][: max(surplus, 0)]:
            task.cancel()  # waiting in take(): cancelling it loses no job
            self._workers.remove(task)
        while len(self._workers) < self.bot.executor.capacity:
            name = f"dream-worker-{next(self._worker_names)}"
            self._workers.append(asyncio.create_task(self._worker(), name=name))

    def _notice_outage(self, capacity: int) -> None:
        """No worker left (a Ray cluster lost), or one back: show every waiting member
        again where they stand and why. Their jobs stay in line (and on disk) throughout."""
        was, self._capacity = self._capacity, capacity
        if was is None or (was > 0) == (capacity > 0):
            return
        waiting = self.bot.queue.waiting()
        if capacity == 0:
            log.warning("no dream worker is reachable; %d job(s) wait", len(waiting))
            for job in self.bot.queue.running():  # their next progress replaces the notice
                self._notice_paused(job.payload)
        else:
            log.info("dream workers are back; %d job(s) waiting", len(waiting))
        for job in waiting:
            job.payload.shown_position = None  # the refresher edits each one again
        self._positions_changed.set()

    def _notice_paused(self, dream_job: DreamJob) -> None:
        """Tell the member whose dream is in hand that its workers are gone (it waits)."""
        if dream_job.started_at is None or dream_job.engine_done or dream_job.cancelled_by_user:
            return
        doing = (
            self._progress_text(dream_job)
            if dream_job.latest is not None
            else f"🌀 Dreaming {dream_job.what}…"
        )
        dream_job.edit_task = asyncio.create_task(  # delivery settles it first
            self._edit(
                dream_job,
                content=f"{doing}\n{NO_WORKERS_RUNNING}",
                view=self._cancel_view(dream_job),
            )
        )

    def _still_wanted(self) -> bool:
        """False for a worker task over the executor's capacity; it leaves the pool."""
        if len(self._workers) <= self.bot.executor.capacity:
            return True
        me = asyncio.current_task()
        if me in self._workers:
            self._workers.remove(me)  # type: ignore[arg-type]
        return False

    async def _take(self) -> Job:
        me = asyncio.current_task()
        self._idle.add(me)  # type: ignore[arg-type]
        try:
            return await self.bot.queue.take()
        finally:
            self._idle.discard(me)  # type: ignore[arg-type]

    async def _worker(self) -> None:
        while self._still_wanted():
            try:
                job = await self._take()
            except QueueClosed:
                return
            try:
                state, note = await self._run(job)
            except Exception as error:
                log.exception("job %s failed in the bot", job.id)
                state, note = JobState.FAILED, f"bot error: {error!r}"
                with contextlib.suppress(Exception):  # tell them, never lose the worker loop
                    await self._say(
                        job.payload,
                        "⚠️ Something went wrong while posting this dream. Please try again.",
                    )
            # A paused job ends this run but stays saved as waiting, for the next start.
            self.bot.queue.finish(job.id, JobState.CANCELLED if state is JobState.QUEUED else state)
            if state is not JobState.QUEUED:
                await self._record_end(job.id, state, note)

    async def _record_end(self, job_id: str, state: JobState, note: str | None) -> None:
        try:
            await self.bot.jobs.finish(job_id, state, note)
        except Exception:
            log.exception("could not record the end of job %s (%s)", job_id, state.value)

    async def _run(self, job: Job) -> tuple[JobState, str | None]:
        """Run one job to its end; the state to record, and why, for the job store."""
        dream_job: DreamJob = job.payload
        if not await dream_job.saved:
            await self._say(dream_job, NOT_SAVED)
            return JobState.FAILED, "could not be saved"
        dream_job.started_at = time.monotonic()
        await self.bot.jobs.mark_running(job.id)
        await self._edit(
            dream_job,
            content=f"🌀 Dreaming {dream_job.what}…",
            view=self._cancel_view(dream_job),
        )
        try:
            image = await self._saved_image(job.id)
            request = self._request(dream_job, image)
            try:
                result = await self.bot.executor.submit(
                    request, lambda progress: self._on_progress(job, progress), job.cancel_event
                )
            finally:
                dream_job.engine_done = True
        except DreamCancelled:
            if self._stopping and not dream_job.cancelled_by_user:
                return await self._pause(dream_job)
            await self._say(dream_job, "Cancelled. Nothing was posted.")
            return JobState.CANCELLED, "cancelled while running"
        except (UserError, DreamFailed) as error:
            await self._say(dream_job, f"⚠️ {error}")
            return JobState.FAILED, str(error)
        except asyncio.CancelledError:  # shutdown gave up waiting for the executor
            await self._pause(dream_job)
            self.bot.queue.finish(job.id, JobState.CANCELLED)
            raise
        try:
            return await self._deliver(job, result)
        except asyncio.CancelledError:  # shutdown cut a slow post short
            if dream_job.posted:  # only the extras are lost: the dream is up
                await self._record_end(job.id, JobState.DONE, "extras cut short by a shutdown")
                self.bot.queue.finish(job.id, JobState.DONE)
            else:  # not a crash: it runs again after the restart
                await self.bot.jobs.requeue(job.id)
                self.bot.queue.finish(job.id, JobState.CANCELLED)
            raise

    def _request(self, dream_job: DreamJob, image: Image.Image) -> DreamRequest:
        record = dream_job.record
        frames = suggest_frame_every(record.params, GIF_FRAMES) if record.animate else None
        return DreamRequest(
            image, record.params, record.max_side, frames, record.variants, record.title,
            label=record.id,  # /dreamadmin status says whose it is, to that server only
        )  # fmt: skip

    async def _saved_image(self, job_id: str) -> Image.Image:
        data = await self.bot.jobs.image(job_id)
        if data is None:
            raise UserError("This dream's saved image is missing, so it was not started.")
        return await asyncio.to_thread(decode_image, data, max_pixels=self.bot.settings.max_pixels)

    async def _pause(self, dream_job: DreamJob) -> tuple[JobState, str | None]:
        """Shutdown stopped this job: save it as waiting again and tell its member."""
        await self.bot.jobs.requeue(dream_job.job_id)
        await self._say(
            dream_job,
            "⏸️ The dream bot is restarting, so this dream was paused. It will run again "
            "when the bot is back; there is nothing you need to do.",
            or_channel=False,
        )
        return JobState.QUEUED, None

    def _on_progress(self, job: Job, progress: Progress) -> None:
        """Called on the loop for every progress event; edits at most every interval."""
        dream_job: DreamJob = job.payload
        dream_job.latest = progress
        editing = dream_job.edit_task is not None and not dream_job.edit_task.done()
        recent = time.monotonic() - dream_job.reply.last_edit < self.bot.settings.progress_interval
        if editing or recent:
            return
        dream_job.edit_task = asyncio.create_task(
            self._edit(
                dream_job, content=self._progress_text(dream_job), view=self._cancel_view(dream_job)
            )
        )

    def _progress_text(self, dream_job: DreamJob) -> str:
        progress = dream_job.latest
        assert progress is not None and dream_job.started_at is not None
        elapsed = time.monotonic() - dream_job.started_at
        fraction = progress.fraction
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
        variant = (
            f"variant {progress.variant}/{progress.variants}, " if progress.variants > 1 else ""
        )
        return (
            f"🌀 Dreaming {dream_job.what}\n"
            f"`{progress_bar(fraction)}` {variant}octave {progress.octave}/{progress.octaves}, "
            f"step {progress.step}/{progress.steps}\n"
            f"elapsed {duration(elapsed)}"
            + (f", about {duration(eta)} left" if eta is not None else "")
        )

    # -- delivering --------------------------------------------------------------------------

    async def _deliver(self, job: Job, result: DreamResult) -> tuple[JobState, str | None]:
        dream_job: DreamJob = job.payload
        await _settle(dream_job)
        record = dream_job.record
        # Off the event loop: a big image takes seconds to fit the upload limit, and every
        # other member's command must still be answered within Discord's 3 s meanwhile.
        encoded = await asyncio.to_thread(encode_to_fit, result.image, record.upload_limit)
        embed = self._result_embed(dream_job, result, encoded.scaled_down)
        embed.set_image(url=f"attachment://{encoded.filename('dream')}")
        view = (
            picker_view(self.bot, record.source_id, "Dream again with…")
            if record.source_id is not None
            else discord.utils.MISSING
        )

        def dream_file() -> discord.File:
            return discord.File(io.BytesIO(encoded.data), filename=encoded.filename("dream"))

        if not await self._edit(
            dream_job, content=None, embed=embed, attachments=[dream_file()], view=view
        ):
            try:
                await dream_job.reply.to_channel(
                    "your dream is ready (it took longer than Discord lets me edit the "
                    "original reply).",
                    embed=embed, file=dream_file(), view=view,
                )  # fmt: skip
            except discord.HTTPException as error:
                log.warning("job %s could not be delivered: %s", job.id, error)
                return JobState.UNDELIVERABLE, f"reply and channel both refused: {error}"
        dream_job.posted = True
        try:
            if record.gallery:
                await self._send_gallery(dream_job.reply.send, result, record.upload_limit)
            if record.animate and result.frames:
                await self._send_animation(dream_job.reply.send, result, record.upload_limit)
        except discord.HTTPException as error:  # the dream itself is posted: it stays
            log.warning("job %s: gallery or animation not posted: %s", job.id, error)
            with contextlib.suppress(discord.HTTPException):
                await dream_job.reply.send(
                    f"⚠️ Discord refused the extra images (HTTP {error.status}); "
                    "the dream above is complete."
                )
            return JobState.DONE, f"extras not posted: {error}"
        return JobState.DONE, None

    async def _send_gallery(self, send: Any, result: DreamResult, limit: int) -> None:
        """Every octave (or every variant of a comparison), labelled, in as few messages as
        the 10-file limit allows, the files of one message sharing its upload limit."""
        if result.panels:
            what, images = "Variants", [(_slug(caption), image) for caption, image in result.panels]
        else:
            what, images = "Octaves", [("", octave) for octave in result.octaves]
        total = len(images)
        per_file = limit // min(total, FILES_PER_MESSAGE)
        files = []
        for index, (label, image) in enumerate(images, start=1):
            encoded = await asyncio.to_thread(encode_to_fit, image, per_file)
            name = "-".join(filter(None, [what[:-1].lower(), f"{index}-of-{total}", label]))
            stem = f"{name}-{image.width}x{image.height}"
            files.append(discord.File(io.BytesIO(encoded.data), filename=encoded.filename(stem)))
        for first in range(0, total, FILES_PER_MESSAGE):
            batch = files[first : first + FILES_PER_MESSAGE]
            order = "in the grid's order" if result.panels else "smallest first"
            await send(f"{what} {first + 1}-{first + len(batch)} of {total}, {order}", files=batch)

    async def _send_animation(self, send: Any, result: DreamResult, limit: int) -> None:
        """The dream forming, as a GIF within the upload limit (or a word on why not)."""
        try:
            data = await asyncio.to_thread(encode_gif_to_fit, result.frames, limit)
        except ValueError as error:
            await send(f"No animation: {error}.")
            return
        await send(
            f"How it formed ({len(result.frames)} moments)",
            file=discord.File(io.BytesIO(data), filename="dream-forming.gif"),
        )

    def _result_embed(
        self, dream_job: DreamJob, result: DreamResult, scaled: bool
    ) -> discord.Embed:
        record = dream_job.record
        title = f"Comparison: {dream_job.name}" if record.variants else f"Dream: {dream_job.preset}"
        embed = discord.Embed(title=title[:256], colour=discord.Colour.purple())
        embed.add_field(name="Model", value=dream_job.params.model)
        targets = {v.params.target_class() for v in record.variants or [record]}
        target = targets.pop() if len(targets) == 1 else None  # only one that every tile used
        if target is not None:
            embed.add_field(name="Target", value=target[1])
        if record.variants:
            captions = ", ".join(variant.caption for variant in record.variants)
            embed.add_field(name=f"{len(record.variants)} variants", value=captions[:1024])
        embed.add_field(name="Size", value=f"{result.image.width}×{result.image.height}")
        embed.add_field(name="Time", value=duration(result.seconds))
        changed = {key: value for key, value in dream_job.record.changed.items() if key != "model"}
        if changed:
            embed.add_field(
                name="Changed from preset",
                value=", ".join(f"{key}={_short(value)}" for key, value in changed.items())[:1024],
                inline=False,
            )
        notes = list(result.notes)
        if any(result.stopped_early):
            stops = sum(result.stopped_early)
            notes.append(f"{stops} octave(s) stopped early at max_loss")
        if scaled:
            notes.append("scaled down to fit Discord's upload limit")
        if notes:
            embed.add_field(name="Notes", value="; ".join(notes)[:1024], inline=False)
        embed.set_footer(text=f"Requested by {dream_job.record.user_name}")
        return embed


def _pictures_in(
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


def _changed_for_all(checked: _Accepted) -> dict[str, Any]:
    """What the member changed from the preset, where every tile of a comparison kept it."""
    changed = checked.params.differences(checked.preset.params)
    for variant in checked.variants:
        kept = variant.params.differences(checked.params)
        changed = {key: value for key, value in changed.items() if key not in kept}
    return changed


async def _settle(dream_job: DreamJob) -> None:
    """Let a progress edit in flight land first, so it cannot overwrite the final word."""
    if dream_job.edit_task is not None:
        await asyncio.gather(dream_job.edit_task, return_exceptions=True)


def _slug(caption: str) -> str:
    """A caption as a file-name part: letters, digits, dots and dashes."""
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in caption)[:40].strip("-")


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v:g}" for k, v in value.items())
    return f"{value:g}" if isinstance(value, float) else str(value)


async def setup(bot: DreamBot) -> None:
    await bot.add_cog(DreamCog(bot))
