"""Daily limits and cooldowns: how often one member may start a dream in one server.

A server's admins set a daily limit (dreams per member in any 24 hours, rolling,
not reset at midnight) and a cooldown (seconds between one member's dreams);
members with an exempt role, and admins, skip both (the caller decides who is
exempt). Every accepted dream is a row here, written when it is accepted, so a
restart forgets nothing and two commands sent at once cannot both slip through:
`reserve` checks and writes under one lock, and a dream refused afterwards (a
bad upload found after the download) gives its place back with `release`.

Only the last 24 hours are kept: the rows are when, not what (no images).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiosqlite

from dream_engine.errors import UserError
from dream_engine.service.database import open_database

__all__ = ["DAY_SECONDS", "QuotaExceeded", "QuotaKind", "QuotaRules", "QuotaStore"]

DAY_SECONDS = 24 * 3600
#: Which rule refused a dream: the daily limit, or the cooldown between two.
QuotaKind = Literal["daily", "cooldown"]


@dataclass(frozen=True)
class QuotaRules:
    """A server's rules for one member; 0 turns either off."""

    daily_limit: int = 0  # dreams in any 24 hours
    cooldown: int = 0  # seconds from one dream's start to the next


class QuotaExceeded(UserError):
    """The member may not start a dream yet, and when they may.

    The fields are what a front end needs to say it in the member's language (the
    cogs do, with `<t:...:R>` for `starts_at`); `str()` is the English sentence.
    - `kind`: "daily" (they had their `limit` dreams in the last 24 hours) or
      "cooldown" (dreams here are `limit` seconds apart);
    - `until`: when they may (Unix time).
    """

    def __init__(self, kind: QuotaKind, limit: int, until: float) -> None:
        self.kind, self.limit, self.until = kind, limit, until
        super().__init__(_english(kind, limit, self.starts_at))

    @property
    def starts_at(self) -> int:
        """`until` as a whole second, rounded up: a member who tries again at the time they
        were shown is let through, never refused by a fraction of a second."""
        return int(self.until) + 1


def _english(kind: QuotaKind, limit: int, starts_at: int) -> str:
    if kind == "daily":
        plural = "s" if limit != 1 else ""
        return (
            f"You have had your {limit} dream{plural} for today here; your next one can start "
            f"<t:{starts_at}:R>."
        )
    return (
        f"Not so fast: dreams here are {limit} s apart; your next one can start "
        f"<t:{starts_at}:R>."
    )


class QuotaStore:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str | Path) -> QuotaStore:
        return cls(await open_database(path))

    async def close(self) -> None:
        await self._db.close()

    async def reserve(
        self,
        guild_id: int | None,
        user_id: int,
        rules: QuotaRules,
        *,
        record: bool = True,
        now: float | None = None,
    ) -> int | None:
        """Count a dream the member starts now, or raise `QuotaExceeded` saying when they
        may. `record=False` only checks (before Discord's 3-second answer, and for a
        dropdown that starts the dream later). The row's id comes back for `release`;
        None when nothing was written (no rules: nothing is read either)."""
        now = time.time() if now is None else now
        guild = guild_id or 0  # a direct message: one quota for all of them
        if not (rules.daily_limit or rules.cooldown):
            return None  # nothing to count: the database is not touched
        async with self._lock:
            rows = await self._db.execute_fetchall(
                "SELECT at FROM dream_starts WHERE guild_id = ? AND user_id = ? AND at > ?"
                " ORDER BY at",
                (guild, user_id, now - DAY_SECONDS),
            )
            starts = [row[0] for row in rows]
            _check(rules, starts, now)
            if not record:
                return None  # a read only: it never waits behind another writer
            await self._db.execute("DELETE FROM dream_starts WHERE at <= ?", (now - DAY_SECONDS,))
            cursor = await self._db.execute(
                "INSERT INTO dream_starts (guild_id, user_id, at) VALUES (?, ?, ?)",
                (guild, user_id, now),
            )
            return cursor.lastrowid

    async def release(self, reservation: int | None) -> None:
        """Give back a dream counted by `reserve` that was then refused."""
        if reservation is not None:
            async with self._lock:
                await self._db.execute("DELETE FROM dream_starts WHERE id = ?", (reservation,))


def _check(rules: QuotaRules, starts: list[float], now: float) -> None:
    """Raise when `starts` (this member's in the last day, oldest first) forbid one now."""
    if rules.daily_limit and len(starts) >= rules.daily_limit:
        # The window rolls: a place frees up a day after the oldest start that fills it.
        until = starts[len(starts) - rules.daily_limit] + DAY_SECONDS
        raise QuotaExceeded("daily", rules.daily_limit, until)
    if rules.cooldown and starts and now - starts[-1] < rules.cooldown:
        raise QuotaExceeded("cooldown", rules.cooldown, starts[-1] + rules.cooldown)
