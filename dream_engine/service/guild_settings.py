"""Per-server settings that admins change with `/dreamadmin`, kept in SQLite.

A server may override the bot's configured defaults for its queue size, its
per-member limit, the longest image side and what one moving dream may hold
(frames, seconds, pixels), and may restrict `/dream` to some channels. A value an
admin never set is stored as NULL, not as a copy of the default, so a default
changed in configuration later reaches every server that never chose its own value.

Every query is scoped by the caller's `guild_id` and the store has no call that
spans servers, so one server's admin can never read or change another's
settings. The bot passes `interaction.guild_id`, never an id a user typed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

import aiosqlite

from dream_engine.errors import ParamError
from dream_engine.media.clips import ClipLimits
from dream_engine.service.database import open_database, transaction
from dream_engine.service.queue import GuildLimits
from dream_engine.service.quotas import QuotaRules

__all__ = [
    "CLIP_FRAMES_RANGE",
    "CLIP_MEGAPIXELS_RANGE",
    "CLIP_SECONDS_RANGE",
    "MAX_CHANNELS",
    "MAX_SIDE_RANGE",
    "QUEUE_SIZE_RANGE",
    "SETTING_LABELS",
    "USER_LIMIT_RANGE",
    "GuildSettings",
    "GuildSettingsStore",
    "SettingRow",
    "SettingsDefaults",
]

# What an admin may choose; the bot also uses these as its slash-command option bounds.
QUEUE_SIZE_RANGE: Final = (1, 100)
USER_LIMIT_RANGE: Final = (1, 20)
MAX_SIDE_RANGE: Final = (64, 4096)
CLIP_FRAMES_RANGE: Final = (2, 240)  # frames of a clip or a zoom
CLIP_SECONDS_RANGE: Final = (1, 60)  # seconds of a clip uploaded
CLIP_MEGAPIXELS_RANGE: Final = (1, 100)  # million pixels dreamed, every frame summed
DAILY_LIMIT_RANGE: Final = (0, 1000)  # dreams a member may start in 24 h; 0: no limit
COOLDOWN_RANGE: Final = (0, 86400)  # seconds between a member's dreams; 0: none
SPOILER_RANGE: Final = (0, 1)  # 1: every result is posted as a spoiler
MAX_EXEMPT_ROLES: Final = 25
MAX_CHANNELS: Final = 25

_RANGES: Final = {
    "queue_size": QUEUE_SIZE_RANGE,
    "user_limit": USER_LIMIT_RANGE,
    "max_side": MAX_SIDE_RANGE,
    "clip_frames": CLIP_FRAMES_RANGE,
    "clip_seconds": CLIP_SECONDS_RANGE,
    "clip_megapixels": CLIP_MEGAPIXELS_RANGE,
    "daily_limit": DAILY_LIMIT_RANGE,
    "cooldown": COOLDOWN_RANGE,
    "spoiler": SPOILER_RANGE,
}
_FIELDS: Final = tuple(_RANGES)  # also the column names in guild_settings
_SQLITE_MAX_INT: Final = 2**63 - 1  # Discord snowflakes fit; anything bigger is not an id


def _check_setting(name: str, value: object, what: str | None = None) -> int:
    """`value` if it is a whole number in `name`'s range; otherwise a ParamError that says so."""
    low, high = _RANGES[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ParamError(
            f"{what or name} must be a whole number from {low} to {high} (got {value!r})"
        )
    return value


def _check_channel(channel_id: object) -> int:
    if isinstance(channel_id, bool) or not isinstance(channel_id, int):
        raise ParamError(f"a channel id must be a whole number (got {channel_id!r})")
    if not 0 < channel_id <= _SQLITE_MAX_INT:
        raise ParamError(f"{channel_id} is not a channel id")
    return channel_id


def _check_guild(guild_id: object) -> None:
    """A bad guild id is the bot's bug, not an admin's mistake: ValueError, not ParamError."""
    if isinstance(guild_id, bool) or not isinstance(guild_id, int):
        raise ValueError(f"guild_id must be an int, got {guild_id!r}")
    if not 0 < guild_id <= _SQLITE_MAX_INT:
        raise ValueError(f"{guild_id} is not a guild id")


@dataclass(frozen=True)
class SettingsDefaults:
    """The bot's configured values, used wherever a server has not chosen its own."""

    queue_size: int = 10
    user_limit: int = 2
    max_side: int = 1024
    # One moving dream: 48 frames (2 s at 24 fps) of 6 million pixels in all (48 frames
    # of 400x300) take about a minute on one GPU and fit Discord's 10 MiB as MP4.
    clip_frames: int = 48
    clip_seconds: int = 10
    clip_megapixels: int = 6
    daily_limit: int = 0  # off until a server's admins set one
    cooldown: int = 0
    spoiler: int = 0  # results as spoilers: off until a server's admins turn it on

    def __post_init__(self) -> None:
        # Same ranges as admins get: `reset` must never land a server outside them.
        for name in _FIELDS:
            _check_setting(name, getattr(self, name), what=f"the default {name}")


@dataclass(frozen=True)
class GuildSettings:
    """One server's effective settings: its own choices, the defaults for the rest."""

    guild_id: int
    queue_size: int
    user_limit: int
    max_side: int
    clip_frames: int = SettingsDefaults.clip_frames
    clip_seconds: int = SettingsDefaults.clip_seconds
    clip_megapixels: int = SettingsDefaults.clip_megapixels
    daily_limit: int = SettingsDefaults.daily_limit
    cooldown: int = SettingsDefaults.cooldown
    spoiler: int = SettingsDefaults.spoiler
    channels: frozenset[int] = frozenset()  # empty: /dream works in every channel
    exempt_roles: frozenset[int] = frozenset()  # members with one skip the quotas
    overridden: frozenset[str] = frozenset()  # fields an admin set; the others are defaults

    def limits(self) -> GuildLimits:
        """What the job queue enforces for this server."""
        return GuildLimits(queue_size=self.queue_size, user_limit=self.user_limit)

    def quota_rules(self) -> QuotaRules:
        """How often one member may start a dream here (`quotas.py`)."""
        return QuotaRules(daily_limit=self.daily_limit, cooldown=self.cooldown)

    def clip_limits(self) -> ClipLimits:
        """What one moving dream (a clip uploaded, or a zoom) may hold in this server."""
        return clip_limits_of(self)

    def allows_channel(self, channel_id: int) -> bool:
        """Whether /dream may run here. For a thread, pass its parent: admins list channels."""
        return not self.channels or channel_id in self.channels

    def is_default(self, name: str) -> bool:
        """Whether `name` follows the bot's configuration rather than an admin's choice."""
        return name not in self.overridden

    def rows(self) -> list[SettingRow]:
        """`/dreamadmin show` as data, in its order: a front end says each row in its reader's
        language (the service knows none), `describe` in English."""
        numbers = [
            SettingRow(name, getattr(self, name), default=self.is_default(name)) for name in _FIELDS
        ]
        return [
            *numbers,
            SettingRow("exempt_roles", tuple(sorted(self.exempt_roles)), default=False),
            SettingRow("channels", tuple(sorted(self.channels)), default=not self.channels),
        ]

    def describe(self) -> list[tuple[str, str]]:
        """(label, value) rows for `/dreamadmin show`, defaults marked so admins see what they set.

        Channels are written as Discord mentions (`<#id>`), which render as names there.
        """
        return [(SETTING_LABELS[row.name], _english_value(row)) for row in self.rows()]


@dataclass(frozen=True)
class SettingRow:
    """One line of `/dreamadmin show`, typed so that the bot can word it in any language.

    `name` is a setting's field (`queue_size` ... `spoiler`), `exempt_roles` or
    `channels`; `value` its number, or the ids of the roles or channels listed;
    `default`: it follows the bot's configuration (never for the roles, which have none).
    """

    name: str
    value: int | tuple[int, ...]
    default: bool


#: The English label of each `SettingRow.name`, as `describe` writes it.
SETTING_LABELS: Final = {
    "queue_size": "Queue size",
    "user_limit": "User limit",
    "max_side": "Max side",
    "clip_frames": "Clip frames",
    "clip_seconds": "Clip seconds",
    "clip_megapixels": "Clip pixels",
    "daily_limit": "Daily limit",
    "cooldown": "Cooldown",
    "spoiler": "Spoilers",
    "exempt_roles": "Exempt roles",
    "channels": "Channels",
}


def _english_value(row: SettingRow) -> str:
    """A row's value as `describe` writes it; channels mark their default themselves."""
    value = row.value
    if isinstance(value, tuple):
        if row.name == "exempt_roles":
            return " ".join(f"<@&{role}>" for role in value) or "none (admins always are)"
        return ", ".join(f"<#{channel}>" for channel in value) or "everywhere (default)"
    units = {"max_side": f"{value} px", "clip_seconds": f"{value} s",
             "clip_megapixels": f"{value} million", "daily_limit": f"{value or 'none'}",
             "cooldown": f"{value} s" if value else "none",
             "spoiler": "on" if value else "off"}  # fmt: skip
    text = units.get(row.name, str(value))
    return f"{text} (default)" if row.default else text


class GuildSettingsStore:
    """Reads and writes per-server settings; one instance owns one connection.

    The connection runs one operation at a time (an `asyncio.Lock`), so a
    multi-statement change is never interleaved with another task's; single
    field changes are per-column UPSERTs, so concurrent admins never undo each
    other's unrelated changes.
    """

    def __init__(self, db: aiosqlite.Connection, defaults: SettingsDefaults) -> None:
        """Use `open`; this takes a connection already prepared by `open_database`."""
        self._db = db
        self._lock = asyncio.Lock()
        self.defaults = defaults

    @classmethod
    async def open(cls, path: str | Path, defaults: SettingsDefaults) -> GuildSettingsStore:
        """Open (or create) the database at `path` and bring its schema up to date."""
        return cls(await open_database(path), defaults)

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> GuildSettingsStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def get(self, guild_id: int) -> GuildSettings:
        """The server's effective settings (the defaults if its admins never changed any)."""
        _check_guild(guild_id)
        async with self._lock:
            return await self._read(guild_id)

    async def update(
        self,
        guild_id: int,
        **given: int | None,
    ) -> GuildSettings:
        """Set the given fields (`queue_size=5`...), leave the others; all are checked
        before anything is written."""
        _check_guild(guild_id)
        unknown = set(given) - set(_FIELDS)
        if unknown:
            raise TypeError(f"no such setting: {', '.join(sorted(unknown))}")
        changes = {
            name: _check_setting(name, value) for name, value in given.items() if value is not None
        }
        async with self._lock:
            if changes:
                # Column names come from _FIELDS, never from the caller.
                columns = ", ".join(changes)
                marks = ", ".join("?" for _ in changes)
                assignments = ", ".join(f"{name} = excluded.{name}" for name in changes)
                await self._db.execute(
                    f"INSERT INTO guild_settings (guild_id, {columns}) VALUES (?, {marks})"
                    f" ON CONFLICT (guild_id) DO UPDATE SET {assignments},"
                    " updated_at = CURRENT_TIMESTAMP",
                    (guild_id, *changes.values()),
                )
            return await self._read(guild_id)

    async def set_channels(self, guild_id: int, channel_ids: Iterable[int]) -> GuildSettings:
        """Replace the server's channel list; an empty one allows /dream everywhere."""
        _check_guild(guild_id)
        channels = frozenset(_check_channel(channel_id) for channel_id in channel_ids)
        if len(channels) > MAX_CHANNELS:
            raise ParamError(
                f"/dream can be limited to at most {MAX_CHANNELS} channels (got {len(channels)})"
            )
        async with self._lock, transaction(self._db):
            await self._ensure_row(guild_id)
            await self._db.execute("DELETE FROM guild_channels WHERE guild_id = ?", (guild_id,))
            await self._db.executemany(
                "INSERT INTO guild_channels (guild_id, channel_id) VALUES (?, ?)",
                [(guild_id, channel_id) for channel_id in sorted(channels)],
            )
            return await self._read(guild_id)

    async def add_channel(self, guild_id: int, channel_id: int) -> GuildSettings:
        """Allow /dream in one more channel (a no-op if it is already listed)."""
        _check_guild(guild_id)
        _check_channel(channel_id)
        async with self._lock, transaction(self._db):
            channels = await self._channels(guild_id)
            if channel_id not in channels:
                if len(channels) >= MAX_CHANNELS:
                    raise ParamError(
                        f"/dream can be limited to at most {MAX_CHANNELS} channels;"
                        " remove one before adding another"
                    )
                await self._ensure_row(guild_id)
                await self._db.execute(
                    "INSERT INTO guild_channels (guild_id, channel_id) VALUES (?, ?)",
                    (guild_id, channel_id),
                )
            return await self._read(guild_id)

    async def exempt_role(self, guild_id: int, role_id: int, *, exempt: bool) -> GuildSettings:
        """Let members with the role skip the daily limit and cooldown, or stop letting them."""
        _check_guild(guild_id)
        _check_channel(role_id)  # a snowflake like any other
        async with self._lock, transaction(self._db):
            roles = await self._exempt_roles(guild_id)
            if exempt and role_id not in roles:
                if len(roles) >= MAX_EXEMPT_ROLES:
                    raise ParamError(f"at most {MAX_EXEMPT_ROLES} roles can be exempt")
                await self._ensure_row(guild_id)
                await self._db.execute(
                    "INSERT INTO guild_exempt_roles (guild_id, role_id) VALUES (?, ?)",
                    (guild_id, role_id),
                )
            elif not exempt:
                await self._db.execute(
                    "DELETE FROM guild_exempt_roles WHERE guild_id = ? AND role_id = ?",
                    (guild_id, role_id),
                )
            return await self._read(guild_id)

    async def _exempt_roles(self, guild_id: int) -> frozenset[int]:
        rows = await self._db.execute_fetchall(
            "SELECT role_id FROM guild_exempt_roles WHERE guild_id = ?", (guild_id,)
        )
        return frozenset(row[0] for row in rows)

    async def remove_channel(self, guild_id: int, channel_id: int) -> GuildSettings:
        """Stop allowing one channel (a no-op if it is not listed).

        Removing the last one empties the list, which allows every channel again;
        the bot may want to say so.
        """
        _check_guild(guild_id)
        _check_channel(channel_id)
        async with self._lock:
            await self._db.execute(
                "DELETE FROM guild_channels WHERE guild_id = ? AND channel_id = ?",
                (guild_id, channel_id),
            )
            return await self._read(guild_id)

    async def reset(self, guild_id: int) -> GuildSettings:
        """Forget everything this server's admins set: it follows the defaults again."""
        _check_guild(guild_id)
        async with self._lock, transaction(self._db):
            # Explicit rather than relying on ON DELETE CASCADE alone.
            await self._db.execute("DELETE FROM guild_channels WHERE guild_id = ?", (guild_id,))
            await self._db.execute(
                "DELETE FROM guild_exempt_roles WHERE guild_id = ?", (guild_id,)
            )
            await self._db.execute("DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,))
            return await self._read(guild_id)

    async def _ensure_row(self, guild_id: int) -> None:
        """The settings row that channel rows refer to (all NULL: defaults) exists."""
        await self._db.execute(
            "INSERT INTO guild_settings (guild_id) VALUES (?)"
            " ON CONFLICT (guild_id) DO UPDATE SET updated_at = CURRENT_TIMESTAMP",
            (guild_id,),
        )

    async def _channels(self, guild_id: int) -> frozenset[int]:
        rows = await self._db.execute_fetchall(
            "SELECT channel_id FROM guild_channels WHERE guild_id = ?", (guild_id,)
        )
        return frozenset(row[0] for row in rows)

    async def _read(self, guild_id: int) -> GuildSettings:
        rows = list(
            await self._db.execute_fetchall(
                f"SELECT {', '.join(_FIELDS)} FROM guild_settings WHERE guild_id = ?",
                (guild_id,),
            )
        )
        stored = dict(zip(_FIELDS, rows[0], strict=True)) if rows else {}
        values: dict[str, int] = {}
        overridden: set[str] = set()
        for name in _FIELDS:
            value = stored.get(name)
            if value is None:
                values[name] = getattr(self.defaults, name)
            else:
                # Clamped, not trusted: a later release may narrow a range; the choice stays.
                low, high = _RANGES[name]
                values[name] = min(max(value, low), high)
                overridden.add(name)
        channels = await self._channels(guild_id)
        if channels:
            overridden.add("channels")
        return GuildSettings(
            guild_id=guild_id, channels=channels, overridden=frozenset(overridden),
            exempt_roles=await self._exempt_roles(guild_id), **values,
        )  # fmt: skip


def clip_limits_of(values: SettingsDefaults | GuildSettings) -> ClipLimits:
    """The clip limits that a server's settings (or the bot's defaults) say."""
    return ClipLimits(
        max_frames=values.clip_frames,
        max_seconds=float(values.clip_seconds),
        max_pixels=values.clip_megapixels * 1_000_000,
    )
