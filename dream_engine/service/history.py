"""Delivered dreams, remembered as metadata: what ran, for whom, where it was posted.

The job store forgets a job a week after it ends and never knew where its result was
posted; this is the record members and admins look back at. `/dreams` lists a
member's last dreams with jump links, the Info button shows every value a dream ran
with (and the CLI line that makes it again), Reroll runs it again with a new seed,
and `/dreamadmin stats` counts a server's week. No image is kept here: the source's
row in `image_sources` has its link, and that has its own, shorter, retention.

Rows older than the retention (`DREAM_HISTORY_DAYS`) are pruned as new ones come.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from dream_engine.core.params import DreamParams
from dream_engine.motion.spec import MotionSpec
from dream_engine.service.database import open_database

__all__ = ["DEFAULT_RETENTION_DAYS", "DreamEntry", "DreamHistory", "WeekStats"]

DEFAULT_RETENTION_DAYS = 90
DAY_SECONDS = 24 * 3600

_COLUMNS = (
    "job_id, guild_id, channel_id, message_id, user_id, preset, params, changed, source_id,"
    " guide_source_id, guide_name, motion, variants, gallery, animate, spoiler, max_side,"
    " precision, width, height, accepted_at, started_at, finished_at, run_seconds"
)


@dataclass(frozen=True)
class DreamEntry:
    """One delivered dream: everything Info shows and Reroll needs, no pixels."""

    job_id: str
    guild_id: int | None
    channel_id: int
    message_id: int | None
    user_id: int
    preset: str
    params: DreamParams
    changed: dict[str, Any]
    source_id: int | None
    guide_source_id: int | None
    guide_name: str | None
    motion: MotionSpec | None
    variants: int  # a comparison's tile count; 0 for one dream
    gallery: bool
    animate: bool
    spoiler: bool
    max_side: int
    precision: str
    width: int
    height: int
    accepted_at: float
    started_at: float
    finished_at: float
    run_seconds: float

    @property
    def wait_seconds(self) -> float:
        """Time in line: from the member's ask to a worker taking it."""
        return max(0.0, self.started_at - self.accepted_at)

    def jump_url(self) -> str | None:
        """Discord's link to the posted result (`@me` outside a server)."""
        if self.message_id is None:
            return None
        where = self.guild_id if self.guild_id is not None else "@me"
        return f"https://discord.com/channels/{where}/{self.channel_id}/{self.message_id}"


@dataclass(frozen=True)
class WeekStats:
    """A server's last seven days, for `/dreamadmin stats`."""

    per_day: list[tuple[date, int]]  # oldest first, every day (zeros too), today last
    median_wait: float | None  # seconds; None with no dreams
    median_run: float | None
    top_presets: list[tuple[str, int]] = field(default_factory=list)  # most used first

    @property
    def total(self) -> int:
        return sum(count for _day, count in self.per_day)


class DreamHistory:
    def __init__(
        self, connection: aiosqlite.Connection, retention_days: int = DEFAULT_RETENTION_DAYS
    ) -> None:
        self._db = connection
        self.retention_days = retention_days

    @classmethod
    async def open(
        cls, path: str | Path, retention_days: int = DEFAULT_RETENTION_DAYS
    ) -> DreamHistory:
        return cls(await open_database(path), retention_days)

    async def close(self) -> None:
        await self._db.close()

    async def record(self, entry: DreamEntry) -> None:
        """Remember a delivered dream, and forget those past the retention."""
        await self._db.execute(
            f"INSERT OR REPLACE INTO dreams ({_COLUMNS}) VALUES ({', '.join('?' * 24)})",
            (
                entry.job_id, entry.guild_id, entry.channel_id, entry.message_id,
                entry.user_id, entry.preset, json.dumps(entry.params.to_dict()),
                json.dumps(entry.changed), entry.source_id, entry.guide_source_id,
                entry.guide_name,
                None if entry.motion is None else json.dumps(entry.motion.to_dict()),
                entry.variants, int(entry.gallery), int(entry.animate), int(entry.spoiler),
                entry.max_side, entry.precision, entry.width, entry.height,
                entry.accepted_at, entry.started_at, entry.finished_at, entry.run_seconds,
            ),
        )  # fmt: skip
        await self.prune(now=entry.finished_at)

    async def prune(self, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        cutoff = now - self.retention_days * DAY_SECONDS
        await self._db.execute("DELETE FROM dreams WHERE finished_at < ?", (cutoff,))

    async def get(self, job_id: str) -> DreamEntry | None:
        rows = await self._db.execute_fetchall(
            f"SELECT {_COLUMNS} FROM dreams WHERE job_id = ?", (job_id,)
        )
        return _entry(next(iter(rows))) if rows else None

    async def recent(self, guild_id: int | None, user_id: int, limit: int = 10) -> list[DreamEntry]:
        """A member's latest dreams in one server (or outside servers, for None), newest first."""
        rows = await self._db.execute_fetchall(
            f"SELECT {_COLUMNS} FROM dreams WHERE guild_id IS ? AND user_id = ?"
            " ORDER BY finished_at DESC LIMIT ?",
            (guild_id, user_id, limit),
        )
        return [_entry(row) for row in rows]

    async def week(self, guild_id: int, *, now: float | None = None) -> WeekStats:
        """Dreams a day over the last seven UTC days (today included), medians, top presets."""
        now = time.time() if now is None else now
        today = datetime.fromtimestamp(now, UTC).date()
        first = today - timedelta(days=6)
        start = datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp()
        rows = await self._db.execute_fetchall(
            "SELECT preset, accepted_at, started_at, finished_at, run_seconds FROM dreams"
            " WHERE guild_id = ? AND finished_at >= ?",
            (guild_id, start),
        )
        days = Counter(datetime.fromtimestamp(row[3], UTC).date() for row in rows)
        per_day = [(first + timedelta(days=n), days[first + timedelta(days=n)]) for n in range(7)]
        waits = [max(0.0, started - accepted) for _p, accepted, started, _f, _r in rows]
        runs = [row[4] for row in rows]
        presets = Counter(row[0] for row in rows).most_common(5)
        return WeekStats(
            per_day,
            statistics.median(waits) if waits else None,
            statistics.median(runs) if runs else None,
            presets,
        )


def _entry(row: Any) -> DreamEntry:
    (
        job_id, guild_id, channel_id, message_id, user_id, preset, params, changed, source_id,
        guide_source_id, guide_name, motion, variants, gallery, animate, spoiler, max_side,
        precision, width, height, accepted_at, started_at, finished_at, run_seconds,
    ) = row  # fmt: skip
    return DreamEntry(
        job_id=job_id, guild_id=guild_id, channel_id=channel_id, message_id=message_id,
        user_id=user_id, preset=preset, params=DreamParams(**json.loads(params)),
        changed=json.loads(changed), source_id=source_id, guide_source_id=guide_source_id,
        guide_name=guide_name,
        motion=None if motion is None else MotionSpec(**json.loads(motion)),
        variants=variants, gallery=bool(gallery), animate=bool(animate), spoiler=bool(spoiler),
        max_side=max_side, precision=precision, width=width, height=height,
        accepted_at=accepted_at, started_at=started_at, finished_at=finished_at,
        run_seconds=run_seconds,
    )  # fmt: skip
