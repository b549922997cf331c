"""Remembered images that dropdowns point at, persisted so they survive a restart.

A Discord component's custom_id holds at most 100 characters: too short for an
attachment URL, long enough for a row id. Rows older than `KEEP_SECONDS` are
pruned. Discord's signed CDN links expire sooner (about a day); the bot asks Discord
to sign an expired one again when it is used (`DreamCog._fetch`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from dream_engine.service.database import open_database

KEEP_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class ImageSource:
    id: int | None  # None until saved: a job that is refused never costs a database write
    url: str
    filename: str
    size: int | None  # bytes; None for an embed's picture, checked once downloaded
    content_type: str | None
    guild_id: int | None
    user_id: int
    created_at: float
    # What `/dream` was asked with besides the preset, for the dropdown it answers with
    # ({"overrides": {...}, "gallery": bool, "animate": bool, "guide": {url, filename,
    # size, content_type}}, the guide only when one was given); None for other sources.
    options: dict[str, Any] | None = None

    @classmethod
    def unsaved(
        cls,
        *,
        url: str,
        filename: str,
        size: int | None,
        content_type: str | None,
        guild_id: int | None,
        user_id: int,
    ) -> ImageSource:
        return cls(None, url, filename, size, content_type, guild_id, user_id, time.time())

    def attachment(self) -> dict[str, Any]:
        """The file's own fields, to keep in another source's options (a guide image with
        the image it steers) and make it again with `unsaved(**fields, ...)`."""
        return {
            "url": self.url, "filename": self.filename, "size": self.size,
            "content_type": self.content_type,
        }  # fmt: skip


class ImageSourceStore:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection

    @classmethod
    async def open(cls, path: str | Path) -> ImageSourceStore:
        return cls(await open_database(path))

    async def save(self, source: ImageSource) -> ImageSource:
        """Persist `source` (made with `ImageSource.unsaved`) and return it with its id."""
        cursor = await self._db.execute(
            "INSERT INTO image_sources (url, filename, size, content_type, guild_id, user_id,"
            " created_at, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                source.url, source.filename, source.size, source.content_type,
                source.guild_id, source.user_id, source.created_at,
                None if source.options is None else json.dumps(source.options),
            ),
        )  # fmt: skip
        await self._db.execute(
            "DELETE FROM image_sources WHERE created_at < ?", (source.created_at - KEEP_SECONDS,)
        )
        await self._db.commit()
        assert cursor.lastrowid is not None
        return dataclasses.replace(source, id=cursor.lastrowid)

    async def get(self, source_id: int) -> ImageSource | None:
        # All rows in one call: a cursor held across awaits would leave a read open that
        # another task's write on this connection would be refused inside (see JobStore).
        rows = await self._db.execute_fetchall(
            "SELECT id, url, filename, size, content_type, guild_id, user_id, created_at,"
            " options FROM image_sources WHERE id = ?",
            (source_id,),
        )
        if not rows:
            return None
        *columns, options = next(iter(rows))
        return ImageSource(*columns, None if options is None else json.loads(options))

    async def close(self) -> None:
        await self._db.close()
