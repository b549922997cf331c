"""Accepted dreams on disk, so that a restart or a crash loses none of them.

The in-memory `JobQueue` decides who goes next; this store remembers what was
promised. The bot writes a job here *before* it tells the member "queued", marks
it running when a worker takes it, and records how it ended. At start-up,
`resume()` hands back every job still queued or running, in accept order, and
the bot puts them back in line.

A job caught running by a crash counts an interruption; one interrupted twice
is not tried a third time (it may be what brings the bot down). The upload is
kept with the job (and a guide image, if it has one), since Discord's CDN links
expire, and dropped with the interaction token when the job ends: neither is needed
after.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiosqlite

from dream_engine.core.params import DreamParams
from dream_engine.errors import ParamError
from dream_engine.motion.spec import MotionSpec
from dream_engine.service.database import open_database
from dream_engine.service.queue import JobState
from dream_engine.study.sweeps import Variant

__all__ = ["MAX_INTERRUPTIONS", "JobRecord", "JobStore", "Resumed"]

log = logging.getLogger(__name__)

#: Restarts that may catch one job running before it is given up.
MAX_INTERRUPTIONS = 2
#: Finished jobs are kept this long (for the log and support questions), then pruned.
KEEP_FINISHED_SECONDS = 7 * 24 * 3600

_COLUMNS = (
    "id, guild_id, channel_id, user_id, user_name, application_id, token, token_expires_at,"
    " upload_limit, preset, params, changed, gallery, source_id, max_side, state,"
    " interruptions, accepted_at, variants, title, animate, guide_name, motion, spoiler,"
    " guide_source_id, interaction_only, locale"
)


@dataclass(frozen=True)
class JobRecord:
    """Everything needed to run a job and reach its member, without the Interaction object."""

    id: str
    guild_id: int | None
    channel_id: int
    user_id: int
    user_name: str
    application_id: int
    token: str | None  # the interaction token; None once the job has ended
    token_expires_at: float  # wall clock
    upload_limit: int
    preset: str
    params: DreamParams
    changed: dict[str, Any]
    gallery: bool
    source_id: int | None
    max_side: int
    state: JobState = JobState.QUEUED
    interruptions: int = 0
    accepted_at: float = field(default_factory=time.time)
    variants: tuple[Variant, ...] = ()  # a comparison: one grid of these, from the same image
    title: str | None = None  # the comparison's grid title
    animate: bool = False  # also deliver a GIF of the dream forming
    guide_name: str | None = None  # the guide image's file name; its bytes are kept apart
    motion: MotionSpec | None = None  # a zoom or a clip; its finished frames are kept apart
    spoiler: bool = False  # its files are posted as spoilers
    guide_source_id: int | None = None  # the guide, remembered for Reroll (image_sources)
    # Asked where the bot is not a member (a user-installed app): no server's rules apply,
    # and nothing may be posted in its channel; `queue_guild` is then None.
    interaction_only: bool = False
    # The member's Discord locale ("de", "ja"): the job outlives its interaction (it is
    # resumed after a restart), and what it shows along the way is in their language.
    locale: str = "en-US"

    @property
    def queue_guild(self) -> int | None:
        """The server whose line and limits it counts in: None (the direct messages' line)
        where the bot is not a member."""
        return None if self.interaction_only else self.guild_id


@dataclass(frozen=True)
class Resumed:
    """What `JobStore.resume` found: jobs to put back in line, and jobs it gave up."""

    jobs: list[JobRecord]
    given_up: list[tuple[JobRecord, str]]  # (job, why), already marked failed


class JobStore:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection

    @classmethod
    async def open(cls, path: str | Path) -> JobStore:
        return cls(await open_database(path))

    async def add(self, job: JobRecord, image: bytes, guide: bytes | None = None) -> None:
        """Persist an accepted job with its upload (and guide); raises if the disk refuses."""
        now = time.time()
        # Ids are short, so a new job may draw the id of one that ended days ago (only
        # jobs in the queue are checked): that row is history, and gives way.
        await self._db.execute(
            "DELETE FROM jobs WHERE id = ? AND state NOT IN ('queued', 'running')", (job.id,)
        )
        await self._db.execute(
            f"INSERT INTO jobs ({_COLUMNS}, image, guide, updated_at)"
            f" VALUES ({', '.join('?' * 30)})",
            (
                job.id, job.guild_id, job.channel_id, job.user_id, job.user_name,
                job.application_id, job.token, job.token_expires_at, job.upload_limit,
                job.preset, json.dumps(job.params.to_dict()), json.dumps(job.changed),
                int(job.gallery), job.source_id, job.max_side, job.state.value,
                job.interruptions, job.accepted_at,
                json.dumps([[v.caption, v.params.to_dict()] for v in job.variants]),
                job.title, int(job.animate), job.guide_name,
                None if job.motion is None else json.dumps(job.motion.to_dict()),
                int(job.spoiler), job.guide_source_id, int(job.interaction_only), job.locale,
                image, guide, now,
            ),
        )  # fmt: skip
        await self._db.execute(
            "DELETE FROM jobs WHERE state NOT IN ('queued', 'running') AND updated_at < ?",
            (now - KEEP_FINISHED_SECONDS,),
        )

    async def image(self, job_id: str) -> bytes | None:
        """The upload kept for `job_id`, or None once the job has ended."""
        rows = await self._rows("SELECT image FROM jobs WHERE id = ?", (job_id,))
        return rows[0][0] if rows else None

    async def guide(self, job_id: str) -> bytes | None:
        """The guide image kept for `job_id`: None when it has none, or has ended."""
        rows = await self._rows("SELECT guide FROM jobs WHERE id = ?", (job_id,))
        return rows[0][0] if rows else None

    async def add_frame(self, job_id: str, number: int, png: bytes) -> None:
        """Keep frame `number` (1-based) that a moving dream finished: a restart goes on after
        the frames kept (`frames`)."""
        await self._db.execute(
            "INSERT OR REPLACE INTO job_frames (job_id, number, png) VALUES (?, ?, ?)",
            (job_id, number, png),
        )

    async def frames(self, job_id: str) -> list[bytes]:
        """The frames kept for `job_id`, in order, up to the first one missing."""
        rows = await self._rows(
            "SELECT number, png FROM job_frames WHERE job_id = ? ORDER BY number", (job_id,)
        )
        kept = []
        for expected, (number, png) in enumerate(rows, start=1):
            if number != expected:
                break
            kept.append(png)
        return kept

    async def get(self, job_id: str) -> JobRecord | None:
        rows = await self._rows(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return _record(rows[0]) if rows else None

    async def note(self, job_id: str) -> str | None:
        rows = await self._rows("SELECT note FROM jobs WHERE id = ?", (job_id,))
        return rows[0][0] if rows else None

    async def mark_running(self, job_id: str) -> None:
        await self._set_state(job_id, JobState.RUNNING)

    async def requeue(self, job_id: str) -> None:
        """Back to waiting (a graceful shutdown stopped it): it resumes first thing next start."""
        await self._set_state(job_id, JobState.QUEUED)

    async def finish(self, job_id: str, state: JobState, note: str | None = None) -> None:
        """Record how the job ended and drop what only a live job needs (uploads, token)."""
        if not state.finished:
            raise ValueError(f"{state} is not a final state")
        await self._db.execute(
            "UPDATE jobs SET state = ?, note = ?, image = NULL, guide = NULL, token = NULL,"
            " updated_at = ?"
            " WHERE id = ?",
            (state.value, note, time.time(), job_id),
        )
        await self._db.execute("DELETE FROM job_frames WHERE job_id = ?", (job_id,))

    async def resume(self) -> Resumed:
        """The jobs a previous run left queued or running, oldest first.

        A job found running was interrupted by a crash or a hard stop: it counts
        one interruption, and at `MAX_INTERRUPTIONS` it is marked failed rather
        than run again. A job whose saved parameters no longer validate (a preset
        layer renamed by an upgrade) is marked failed with the reason.
        """
        rows = await self._rows(
            f"SELECT {_COLUMNS} FROM jobs WHERE state IN ('queued', 'running') ORDER BY seq"
        )
        jobs: list[JobRecord] = []
        given_up: list[tuple[JobRecord, str]] = []
        for row in rows:
            try:
                job = _record(row)
            except (ParamError, TypeError, ValueError) as error:
                log.warning("job %s cannot be resumed: %s", row[0], error)
                await self._fail_unreadable(row[0], str(error))
                continue
            if job.state is JobState.RUNNING:
                job = replace(job, interruptions=job.interruptions + 1, state=JobState.QUEUED)
                await self._db.execute(
                    "UPDATE jobs SET state = 'queued', interruptions = ?, updated_at = ?"
                    " WHERE id = ?",
                    (job.interruptions, time.time(), job.id),
                )
                if job.interruptions >= MAX_INTERRUPTIONS:
                    why = (
                        f"the bot stopped {job.interruptions} times while this dream was "
                        "running, so it was not tried again"
                    )
                    await self.finish(job.id, JobState.FAILED, why)
                    given_up.append((job, why))
                    continue
            jobs.append(job)
        return Resumed(jobs, given_up)

    async def live_states(self) -> dict[str, JobState]:
        """Every job not yet ended (waiting or running), by id: what a restart would resume."""
        rows = await self._rows("SELECT id, state FROM jobs WHERE state IN ('queued', 'running')")
        return {job_id: JobState(state) for job_id, state in rows}

    async def close(self) -> None:
        await self._db.close()

    async def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        """A query's rows in one call. Never a cursor held across awaits: other tasks'
        writes on this connection would then run inside its open read, and SQLite refuses
        such a write at once ("database is locked", whatever the busy timeout) when another
        connection has written since the read began."""
        return list(await self._db.execute_fetchall(sql, args))

    async def _set_state(self, job_id: str, state: JobState) -> None:
        await self._db.execute(
            "UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?",
            (state.value, time.time(), job_id),
        )

    async def _fail_unreadable(self, job_id: str, why: str) -> None:
        await self.finish(job_id, JobState.FAILED, f"could not be resumed: {why}")


def _record(row: tuple[Any, ...]) -> JobRecord:
    (
        job_id, guild_id, channel_id, user_id, user_name, application_id, token,
        token_expires_at, upload_limit, preset, params, changed, gallery, source_id,
        max_side, state, interruptions, accepted_at, variants, title, animate, guide_name,
        motion, spoiler, guide_source_id, interaction_only, locale,
    ) = row  # fmt: skip
    return JobRecord(
        id=job_id, guild_id=guild_id, channel_id=channel_id, user_id=user_id,
        user_name=user_name, application_id=application_id, token=token,
        token_expires_at=token_expires_at, upload_limit=upload_limit, preset=preset,
        params=DreamParams(**json.loads(params)).validate(), changed=json.loads(changed),
        gallery=bool(gallery), source_id=source_id, max_side=max_side,
        state=JobState(state), interruptions=interruptions, accepted_at=accepted_at,
        variants=tuple(
            Variant(caption, DreamParams(**fields).validate())
            for caption, fields in json.loads(variants)
        ),
        title=title, animate=bool(animate), guide_name=guide_name,
        motion=None if motion is None else MotionSpec.from_dict(json.loads(motion)),
        spoiler=bool(spoiler), guide_source_id=guide_source_id,
        interaction_only=bool(interaction_only), locale=locale,
    )  # fmt: skip
