"""Remembered images that dropdowns point at, persisted so they survive a restart.

A Discord component's custom_id holds at most 100 characters: too short for an
attachment URL, long enough for a row id. Rows older than `KEEP_SECONDS` are
pruned; Discord's signed CDN links expire about then anyway.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from dream_engine.database import open_database

KEEP_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class ImageSource:
    id: int
    url: str
    filename: str
    size: int
    content_type: str | None
    guild_id: int | None
    user_id: int
    created_at: float


class ImageSourceStore:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection

    @classmethod
    async def open(cls, path: str | Path) -> ImageSourceStore:
        return cls(await open_database(path))

    async def add(
        self,
        *,
        url: str,
        filename: str,
        size: int,
        content_type: str | None,
        guild_id: int | None,
        user_id: int,
    ) -> ImageSource:
        now = time.time()
        cursor = await self._db.execute(
            "INSERT INTO image_sources (url, filename, size, content_type, guild_id, user_id,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (url, filename, size, content_type, guild_id, user_id, now),
        )
        await self._db.execute(
            "DELETE FROM image_sources WHERE created_at < ?", (now - KEEP_SECONDS,)
        )
        await self._db.commit()
        assert cursor.lastrowid is not None
        return ImageSource(
            cursor.lastrowid, url, filename, size, content_type, guild_id, user_id, now
        )

    async def get(self, source_id: int) -> ImageSource | None:
        async with self._db.execute(
            "SELECT id, url, filename, size, content_type, guild_id, user_id, created_at"
            " FROM image_sources WHERE id = ?",
            (source_id,),
        ) as cursor:
            row = await cursor.fetchone()
        return ImageSource(*row) if row else None

    async def close(self) -> None:
        await self._db.close()
