"""What a member sees of their dream: place in line, progress, the result and its extras.

`Delivery` is the Discord side of the scheduler's `DreamListener`: each job's
original response is edited along the way (queued, dreaming with a progress
bar, the dream with an embed of what was used), the gallery and the GIF follow
as further messages, and when the interaction token is dead (15 minutes) the
result goes to the channel with a mention instead (`cogs/replies.py`).

All of it is in the member's language: the job keeps their locale
(`JobRecord.locale`), since it outlives the interaction and may be resumed by a
bot that restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord

from cogs.common import dream_words, duration, ordinal, progress_bar
from cogs.i18n import LocaleLike, tr
from cogs.refusals import WARNING, service_message
from cogs.replies import JobReply
from cogs.views import cancel_view, result_view
from dream_engine.media.animation import encode_gif_to_fit
from dream_engine.media.clip_encoding import encode_clip_to_fit
from dream_engine.media.images import encode_to_fit
from dream_engine.service.queue import JobState
from dream_engine.service.scheduler import Pause, Ticket

if TYPE_CHECKING:
    from bot import DreamBot
    from dream_engine.core.results import DreamResult, Progress
    from dream_engine.service.job_store import JobRecord

log = logging.getLogger(__name__)

# The upload limit (the server's, at most 25 MiB) is for all of one message's files.
FILES_PER_MESSAGE = 10


def no_workers(locale: LocaleLike, *, running: bool) -> str:
    """The notice when no dream worker can be reached: the job waits, nothing is lost."""
    if running:
        return "⏸️ " + tr(
            locale,
            "The dream workers can't be reached right now; this dream is kept and goes on "
            "when they are back.",
        )
    return "⏸️ " + tr(
        locale,
        "The dream workers can't be reached right now; your dream keeps its place and will "
        "start when they are back.",
    )


def paused_text(why: Pause, locale: LocaleLike) -> str:
    """Why a job stopped for a restart (RESTART: it was waiting; STOPPED: it was running)."""
    if why is Pause.RESTART:
        return "⏸️ " + tr(
            locale,
            "The dream bot is restarting. Your dream keeps its place and will start when the "
            "bot is back; there is nothing you need to do.",
        )
    return "⏸️ " + tr(
        locale,
        "The dream bot is restarting, so this dream was paused. It will run again when the "
        "bot is back; there is nothing you need to do.",
    )


def too_big_to_post(locale: LocaleLike) -> str:
    """A moving dream that no encoding fits into the upload limit: what to ask for instead."""
    return WARNING + tr(
        locale,
        "This dream came out too big for this server's upload limit, even small. Try fewer "
        "frames or format:mp4.",
    )


def describe(ticket: Ticket, locale: LocaleLike = None) -> str:
    """The job in a few words, for its messages and `/queue` (whose member may read another
    language than the job's: hence the locale is the caller's)."""
    return dream_words(ticket.name, len(ticket.record.variants), ticket.record.motion, locale)


def _dreaming(ticket: Ticket) -> str:
    """What a job shows from when a worker takes it until its first progress."""
    locale = ticket.record.locale
    return "🌀 " + tr(locale, "Dreaming {what}…", what=describe(ticket, locale))


@dataclass
class _Post:
    """Where one job's messages go, and the progress edit in flight, if any."""

    reply: JobReply
    edit_task: asyncio.Task[bool] | None = None


class Delivery:
    """The dream service's listener: every message a job's member sees."""

    def __init__(self, bot: DreamBot) -> None:
        self.bot = bot
        self._posts: weakref.WeakKeyDictionary[Ticket, _Post] = weakref.WeakKeyDictionary()

    def _post(self, ticket: Ticket) -> _Post:
        post = self._posts.get(ticket)
        if post is None:
            post = self._posts[ticket] = _Post(JobReply(self.bot, ticket.record))
        return post

    # -- the listener ------------------------------------------------------------------------

    async def queued(self, ticket: Ticket, position: int, *, outage: bool) -> None:
        content = "🌙 " + queued_text(ticket, position)
        if outage:
            content += "\n" + no_workers(ticket.record.locale, running=False)
        await self._edit(ticket, content=content, view=cancel_view(ticket.job_id))

    async def started(self, ticket: Ticket) -> None:
        await self._edit(ticket, content=_dreaming(ticket), view=cancel_view(ticket.job_id))

    def progress(self, ticket: Ticket, progress: Progress) -> None:
        """Called on the loop for every progress event; edits at most every interval."""
        post = self._post(ticket)
        editing = post.edit_task is not None and not post.edit_task.done()
        recent = time.monotonic() - post.reply.last_edit < self.bot.settings.progress_interval
        if editing or recent:
            return
        post.edit_task = asyncio.create_task(
            self._edit(ticket, content=progress_text(ticket), view=cancel_view(ticket.job_id))
        )

    async def paused(self, ticket: Ticket, why: Pause) -> None:
        if why is Pause.OUTAGE:  # the workers are gone while it runs: it waits for them
            if ticket.engine_done or ticket.cancelled_by_user or ticket.posted:
                return
            doing = progress_text(ticket) if ticket.latest is not None else _dreaming(ticket)
            notice = no_workers(ticket.record.locale, running=True)
            post = self._post(ticket)
            post.edit_task = asyncio.create_task(  # delivery settles it first
                self._edit(ticket, content=f"{doing}\n{notice}", view=cancel_view(ticket.job_id))
            )
            return
        # One restart must not ping everyone who waits: in place, never in the channel.
        await self.failed(ticket, paused_text(why, ticket.record.locale), or_channel=False)

    async def failed(self, ticket: Ticket, message: str, *, or_channel: bool = True) -> None:
        """A final word on a job that has no result: in place, or in the channel (where it
        pings its member, so not for news that needs nothing from them). The scheduler's
        own words (English constants) are said in the member's language here."""
        message = service_message(message, ticket.record.locale)
        await self._settle(ticket)
        edited = await self._edit(ticket, content=message, view=None, embed=None, attachments=[])
        if not edited and or_channel:
            try:
                await self._post(ticket).reply.to_channel(message)
            except discord.HTTPException as error:
                log.warning("could not tell the owner of job %s: %s", ticket.job_id, error)

    async def finished(self, ticket: Ticket, result: DreamResult) -> tuple[JobState, str | None]:
        """Post the dream (then its gallery or GIF); how the job ended, for the store."""
        await self._settle(ticket)
        record, reply = ticket.record, self._post(ticket).reply
        locale = record.locale
        # Off the event loop: a big image takes seconds to fit the upload limit, and every
        # other member's command must still be answered within Discord's 3 s meanwhile.
        if record.motion is not None:
            try:
                encoded = await asyncio.to_thread(
                    encode_clip_to_fit, result.frames, result.fps or record.motion.fps,
                    record.motion.format, record.upload_limit,
                )  # fmt: skip
            except ValueError:
                await self.failed(ticket, too_big_to_post(locale))
                return JobState.UNDELIVERABLE, "the clip did not fit the upload limit"
        else:
            encoded = await asyncio.to_thread(encode_to_fit, result.image, record.upload_limit)
        embed = result_embed(ticket, result, encoded.scaled_down)
        # An MP4 plays below the embed; a spoiler's picture in the embed would show unblurred.
        if not record.spoiler and (record.motion is None or record.motion.format == "gif"):
            embed.set_image(url=f"attachment://{encoded.filename('dream')}")
        view = result_view(
            self.bot, record.source_id, record.user_id, record.id, reroll=not record.variants
        )

        def dream_file() -> discord.File:
            return discord.File(
                io.BytesIO(encoded.data), filename=encoded.filename("dream"), spoiler=record.spoiler
            )

        if not await self._edit(
            ticket, content=None, embed=embed, attachments=[dream_file()], view=view
        ):
            try:
                await reply.to_channel(
                    tr(locale, "your dream is ready (it took longer than Discord lets me edit "
                               "the original reply)."),
                    embed=embed, file=dream_file(), view=view,
                )  # fmt: skip
            except discord.HTTPException as error:
                log.warning("job %s could not be delivered: %s", ticket.job_id, error)
                return JobState.UNDELIVERABLE, f"reply and channel both refused: {error}"
        ticket.posted, ticket.message_id = True, reply.message_id
        await self.bot.dreams.remember(ticket, result)  # its Info and Reroll answer from now
        try:
            if record.gallery:
                await send_gallery(reply.send, result, record.upload_limit, record.spoiler, locale)
            if record.animate and result.frames:
                await send_animation(
                    reply.send, result, record.upload_limit, record.spoiler, locale
                )
        except discord.HTTPException as error:  # the dream itself is posted: it stays
            log.warning("job %s: gallery or animation not posted: %s", ticket.job_id, error)
            with contextlib.suppress(discord.HTTPException):
                await reply.send(
                    WARNING
                    + tr(locale, "Discord refused the extra images (HTTP {status}); the dream "
                                 "above is complete.", status=error.status)
                )  # fmt: skip
            return JobState.DONE, f"extras not posted: {error}"
        return JobState.DONE, None

    # -- helpers ----------------------------------------------------------------------------

    async def _edit(self, ticket: Ticket, **fields: Any) -> bool:
        """Edit the job's original response; False once its token is dead."""
        return await self._post(ticket).reply.edit(**fields)

    async def _settle(self, ticket: Ticket) -> None:
        """Let a progress edit in flight land first, so it cannot overwrite the final word."""
        task = self._post(ticket).edit_task
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)


def queued_text(ticket: Ticket, position: int) -> str:
    """The job's place in line, e.g. "Queued **balanced**: 2nd in line.", and whether it
    came back after a restart."""
    locale = ticket.record.locale
    what = describe(ticket, locale)
    place = (
        tr(locale, "{position} in line", position=ordinal(position, locale))
        if position > 1
        else tr(locale, "next in line")
    )
    if ticket.resumed:
        return tr(locale, "Queued {what}: {place} (back after a restart).", what=what, place=place)
    return tr(locale, "Queued {what}: {place}.", what=what, place=place)


def progress_text(ticket: Ticket) -> str:
    progress = ticket.latest
    assert progress is not None and ticket.started_at is not None
    locale = ticket.record.locale
    elapsed = time.monotonic() - ticket.started_at
    fraction = progress.fraction
    eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
    where = [
        tr(locale, "octave {n}/{total}", n=progress.octave, total=progress.octaves),
        tr(locale, "step {n}/{total}", n=progress.step, total=progress.steps),
    ]
    if progress.frames:
        where.insert(0, tr(locale, "frame {n}/{total}", n=progress.frame, total=progress.frames))
    elif progress.variants > 1:
        where.insert(
            0, tr(locale, "variant {n}/{total}", n=progress.variant, total=progress.variants)
        )
    timing = (
        tr(locale, "elapsed {elapsed}, about {left} left", elapsed=duration(elapsed),
           left=duration(eta))
        if eta is not None
        else tr(locale, "elapsed {elapsed}", elapsed=duration(elapsed))
    )  # fmt: skip
    return (
        "🌀 " + tr(locale, "Dreaming {what}", what=describe(ticket, locale)) + "\n"
        f"`{progress_bar(fraction)}` {', '.join(where)}\n{timing}"
    )


async def send_gallery(
    send: Any, result: DreamResult, limit: int, spoiler: bool = False, locale: LocaleLike = None
) -> None:
    """Every octave (or every variant of a comparison), labelled, in as few messages as
    the 10-file limit allows, the files of one message sharing its upload limit."""
    if result.panels:
        what, images = "variant", [(_slug(caption), image) for caption, image in result.panels]
    else:
        what, images = "octave", [("", octave) for octave in result.octaves]
    total = len(images)
    per_file = limit // min(total, FILES_PER_MESSAGE)
    files = []
    for index, (label, image) in enumerate(images, start=1):
        encoded = await asyncio.to_thread(encode_to_fit, image, per_file)
        name = "-".join(filter(None, [what, f"{index}-of-{total}", label]))
        stem = f"{name}-{image.width}x{image.height}"
        files.append(
            discord.File(io.BytesIO(encoded.data), filename=encoded.filename(stem), spoiler=spoiler)
        )
    for first in range(0, total, FILES_PER_MESSAGE):
        batch = files[first : first + FILES_PER_MESSAGE]
        shown = {"first": first + 1, "last": first + len(batch), "total": total}
        caption = (
            tr(locale, "Variants {first}-{last} of {total}, in the grid's order", **shown)
            if result.panels
            else tr(locale, "Octaves {first}-{last} of {total}, smallest first", **shown)
        )
        await send(caption, files=batch)


async def send_animation(
    send: Any, result: DreamResult, limit: int, spoiler: bool = False, locale: LocaleLike = None
) -> None:
    """The dream forming, as a GIF within the upload limit (or a word on why not)."""
    try:
        data = await asyncio.to_thread(encode_gif_to_fit, result.frames, limit)
    except ValueError as error:  # the reason is the encoder's, in English
        await send(tr(locale, "No animation: {why}.", why=error))
        return
    await send(
        tr(locale, "How it formed ({count} moments)", count=len(result.frames)),
        file=discord.File(io.BytesIO(data), filename="dream-forming.gif", spoiler=spoiler),
    )


def result_embed(ticket: Ticket, result: DreamResult, scaled: bool) -> discord.Embed:
    record = ticket.record
    locale = record.locale
    title = (
        tr(locale, "Comparison: {name}", name=ticket.name)
        if record.variants
        else tr(locale, "Dream: {preset}", preset=ticket.preset)
    )
    embed = discord.Embed(title=title[:256], colour=discord.Colour.purple())
    embed.add_field(name=tr(locale, "Model"), value=ticket.params.model)
    targets = {v.params.target_class() for v in record.variants or [record]}
    target = targets.pop() if len(targets) == 1 else None  # only one that every tile used
    if target is not None:
        embed.add_field(name=tr(locale, "Target"), value=target[1])
    if record.variants:
        captions = ", ".join(variant.caption for variant in record.variants)
        embed.add_field(
            name=tr(locale, "{count} variants", count=len(record.variants)), value=captions[:1024]
        )
    if record.guide_name:
        embed.add_field(name=tr(locale, "Guide"), value=record.guide_name[:1024])
    if record.motion is not None:
        embed.add_field(name=tr(locale, "Frames"), value=_frames(record, result))
    embed.add_field(name=tr(locale, "Size"), value=f"{result.image.width}×{result.image.height}")
    embed.add_field(name=tr(locale, "Time"), value=duration(result.seconds))
    changed = {key: value for key, value in record.changed.items() if key != "model"}
    if changed:
        embed.add_field(
            name=tr(locale, "Changed from preset"),
            value=", ".join(f"{key}={_short(value)}" for key, value in changed.items())[:1024],
            inline=False,
        )
    notes = list(result.notes)  # the engine's, in English
    if any(result.stopped_early):
        notes.append(
            tr(locale, "{count} octave(s) stopped early at max_loss",
               count=sum(result.stopped_early))
        )  # fmt: skip
    if scaled:
        notes.append(tr(locale, "scaled down to fit Discord's upload limit"))
    if notes:
        embed.add_field(name=tr(locale, "Notes"), value="; ".join(notes)[:1024], inline=False)
    embed.set_footer(text=tr(locale, "Requested by {name}", name=record.user_name))
    return embed


def _frames(record: JobRecord, result: DreamResult) -> str:
    """A moving dream's frames: how many, how fast, and how they move."""
    motion, locale = record.motion, record.locale
    assert motion is not None
    shown = {"frames": len(result.frames), "fps": f"{result.fps or motion.fps:g}"}
    if motion.kind == "zoom":
        return tr(locale, "{frames} at {fps} fps, zoom {zoom}x a frame", zoom=f"{motion.zoom:g}",
                  **shown)  # fmt: skip
    return tr(locale, "{frames} at {fps} fps, blend {blend}", blend=f"{motion.blend:g}", **shown)


def _slug(caption: str) -> str:
    """A caption as a file-name part: letters, digits, dots and dashes."""
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in caption)[:40].strip("-")


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v:g}" for k, v in value.items())
    return f"{value:g}" if isinstance(value, float) else str(value)
