"""What a member sees of their dream: place in line, progress, the result and its extras.

`Delivery` is the Discord side of the scheduler's `DreamListener`: each job's
original response is edited along the way (queued, dreaming with a progress
bar, the dream with an embed of what was used), the gallery and the GIF follow
as further messages, and when the interaction token is dead (15 minutes) the
result goes to the channel with a mention instead (`cogs/replies.py`).
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

from cogs.common import duration, ordinal, progress_bar
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

log = logging.getLogger(__name__)

# The upload limit (the server's, at most 25 MiB) is for all of one message's files.
FILES_PER_MESSAGE = 10
NO_WORKERS = (
    "⏸️ The dream workers can't be reached right now; your dream keeps its place and will "
    "start when they are back."
)
NO_WORKERS_RUNNING = (
    "⏸️ The dream workers can't be reached right now; this dream is kept and goes on when "
    "they are back."
)
TOO_BIG_TO_POST = (
    "⚠️ This dream came out too big for this server's upload limit, even small. Try fewer "
    "frames or format:mp4."
)
PAUSED = {
    Pause.RESTART: (
        "⏸️ The dream bot is restarting. Your dream keeps its place and will start "
        "when the bot is back; there is nothing you need to do."
    ),
    Pause.STOPPED: (
        "⏸️ The dream bot is restarting, so this dream was paused. It will run again "
        "when the bot is back; there is nothing you need to do."
    ),
}


def describe(ticket: Ticket) -> str:
    """The job in a few words, for its messages and `/queue`."""
    if ticket.record.variants:
        return f"a comparison of {len(ticket.record.variants)} (**{ticket.name}**)"
    motion = ticket.record.motion
    if motion is not None:
        what = "a zoom" if motion.kind == "zoom" else "a clip"
        return f"{what} of {motion.frames} frames (**{ticket.name}**)"
    return f"**{ticket.name}**"


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
        waiting = f"{ordinal(position)} in line" if position > 1 else "next in line"
        back = " (back after a restart)" if ticket.resumed else ""
        notice = f"\n{NO_WORKERS}" if outage else ""
        await self._edit(
            ticket,
            content=f"🌙 Queued {describe(ticket)}: {waiting}{back}.{notice}",
            view=cancel_view(ticket.job_id),
        )

    async def started(self, ticket: Ticket) -> None:
        await self._edit(
            ticket, content=f"🌀 Dreaming {describe(ticket)}…", view=cancel_view(ticket.job_id)
        )

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
            doing = (
                progress_text(ticket)
                if ticket.latest is not None
                else f"🌀 Dreaming {describe(ticket)}…"
            )
            post = self._post(ticket)
            post.edit_task = asyncio.create_task(  # delivery settles it first
                self._edit(
                    ticket,
                    content=f"{doing}\n{NO_WORKERS_RUNNING}",
                    view=cancel_view(ticket.job_id),
                )
            )
            return
        # One restart must not ping everyone who waits: in place, never in the channel.
        await self.failed(ticket, PAUSED[why], or_channel=False)

    async def failed(self, ticket: Ticket, message: str, *, or_channel: bool = True) -> None:
        """A final word on a job that has no result: in place, or in the channel (where it
        pings its member, so not for news that needs nothing from them)."""
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
        # Off the event loop: a big image takes seconds to fit the upload limit, and every
        # other member's command must still be answered within Discord's 3 s meanwhile.
        if record.motion is not None:
            try:
                encoded = await asyncio.to_thread(
                    encode_clip_to_fit, result.frames, result.fps or record.motion.fps,
                    record.motion.format, record.upload_limit,
                )  # fmt: skip
            except ValueError:
                await self.failed(ticket, TOO_BIG_TO_POST)
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
                    "your dream is ready (it took longer than Discord lets me edit the "
                    "original reply).",
                    embed=embed, file=dream_file(), view=view,
                )  # fmt: skip
            except discord.HTTPException as error:
                log.warning("job %s could not be delivered: %s", ticket.job_id, error)
                return JobState.UNDELIVERABLE, f"reply and channel both refused: {error}"
        ticket.posted, ticket.message_id = True, reply.message_id
        await self.bot.dreams.remember(ticket, result)  # its Info and Reroll answer from now
        try:
            if record.gallery:
                await send_gallery(reply.send, result, record.upload_limit, record.spoiler)
            if record.animate and result.frames:
                await send_animation(reply.send, result, record.upload_limit, record.spoiler)
        except discord.HTTPException as error:  # the dream itself is posted: it stays
            log.warning("job %s: gallery or animation not posted: %s", ticket.job_id, error)
            with contextlib.suppress(discord.HTTPException):
                await reply.send(
                    f"⚠️ Discord refused the extra images (HTTP {error.status}); "
                    "the dream above is complete."
                )
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


def progress_text(ticket: Ticket) -> str:
    progress = ticket.latest
    assert progress is not None and ticket.started_at is not None
    elapsed = time.monotonic() - ticket.started_at
    fraction = progress.fraction
    eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
    variant = f"variant {progress.variant}/{progress.variants}, " if progress.variants > 1 else ""
    if progress.frames:
        variant = f"frame {progress.frame}/{progress.frames}, "
    return (
        f"🌀 Dreaming {describe(ticket)}\n"
        f"`{progress_bar(fraction)}` {variant}octave {progress.octave}/{progress.octaves}, "
        f"step {progress.step}/{progress.steps}\n"
        f"elapsed {duration(elapsed)}"
        + (f", about {duration(eta)} left" if eta is not None else "")
    )


async def send_gallery(send: Any, result: DreamResult, limit: int, spoiler: bool = False) -> None:
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
        files.append(
            discord.File(io.BytesIO(encoded.data), filename=encoded.filename(stem), spoiler=spoiler)
        )
    for first in range(0, total, FILES_PER_MESSAGE):
        batch = files[first : first + FILES_PER_MESSAGE]
        order = "in the grid's order" if result.panels else "smallest first"
        await send(f"{what} {first + 1}-{first + len(batch)} of {total}, {order}", files=batch)


async def send_animation(send: Any, result: DreamResult, limit: int, spoiler: bool = False) -> None:
    """The dream forming, as a GIF within the upload limit (or a word on why not)."""
    try:
        data = await asyncio.to_thread(encode_gif_to_fit, result.frames, limit)
    except ValueError as error:
        await send(f"No animation: {error}.")
        return
    await send(
        f"How it formed ({len(result.frames)} moments)",
        file=discord.File(io.BytesIO(data), filename="dream-forming.gif", spoiler=spoiler),
    )


def result_embed(ticket: Ticket, result: DreamResult, scaled: bool) -> discord.Embed:
    record = ticket.record
    title = f"Comparison: {ticket.name}" if record.variants else f"Dream: {ticket.preset}"
    embed = discord.Embed(title=title[:256], colour=discord.Colour.purple())
    embed.add_field(name="Model", value=ticket.params.model)
    targets = {v.params.target_class() for v in record.variants or [record]}
    target = targets.pop() if len(targets) == 1 else None  # only one that every tile used
    if target is not None:
        embed.add_field(name="Target", value=target[1])
    if record.variants:
        captions = ", ".join(variant.caption for variant in record.variants)
        embed.add_field(name=f"{len(record.variants)} variants", value=captions[:1024])
    if record.guide_name:
        embed.add_field(name="Guide", value=record.guide_name[:1024])
    if record.motion is not None:
        shown = f"{len(result.frames)} at {result.fps or record.motion.fps:g} fps"
        if record.motion.kind == "zoom":
            shown += f", zoom {record.motion.zoom:g}x a frame"
        else:
            shown += f", blend {record.motion.blend:g}"
        embed.add_field(name="Frames", value=shown)
    embed.add_field(name="Size", value=f"{result.image.width}×{result.image.height}")
    embed.add_field(name="Time", value=duration(result.seconds))
    changed = {key: value for key, value in record.changed.items() if key != "model"}
    if changed:
        embed.add_field(
            name="Changed from preset",
            value=", ".join(f"{key}={_short(value)}" for key, value in changed.items())[:1024],
            inline=False,
        )
    notes = list(result.notes)
    if any(result.stopped_early):
        notes.append(f"{sum(result.stopped_early)} octave(s) stopped early at max_loss")
    if scaled:
        notes.append("scaled down to fit Discord's upload limit")
    if notes:
        embed.add_field(name="Notes", value="; ".join(notes)[:1024], inline=False)
    embed.set_footer(text=f"Requested by {record.user_name}")
    return embed


def _slug(caption: str) -> str:
    """A caption as a file-name part: letters, digits, dots and dashes."""
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in caption)[:40].strip("-")


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v:g}" for k, v in value.items())
    return f"{value:g}" if isinstance(value, float) else str(value)
