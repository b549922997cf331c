"""The Discord bot: `python bot.py` with settings from the environment or `.env`.

`Settings.from_env()` -> `create_bot(settings)` -> `bot.start(token)`. Tests call
`create_bot` with their own settings and point discord.py at a local fake
Discord. The bot owns the shared pieces (settings store, job queue, executor);
the cogs in `cogs/` hold everything users see.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import secrets
import signal
import sqlite3
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from dream_engine.core.models import MODELS
from dream_engine.core.params import DEFAULT_TILE_SIZE, MAX_TILE_SIZE, PRECISION_CHOICES
from dream_engine.core.presets import default_preset_for, load_preset
from dream_engine.errors import UserError
from dream_engine.media.clips import ClipLimits
from dream_engine.media.images import DEFAULT_MAX_PIXELS
from dream_engine.runtime.executor import EngineConfig, Executor, ExecutorUnavailable
from dream_engine.runtime.local import LocalExecutor
from dream_engine.service.database import MigrationError
from dream_engine.service.guild_settings import (
    CLIP_FRAMES_RANGE,
    CLIP_MEGAPIXELS_RANGE,
    CLIP_SECONDS_RANGE,
    MAX_SIDE_RANGE,
    QUEUE_SIZE_RANGE,
    USER_LIMIT_RANGE,
    GuildSettingsStore,
    SettingsDefaults,
    clip_limits_of,
)
from dream_engine.service.history import DEFAULT_RETENTION_DAYS, DreamHistory
from dream_engine.service.job_store import JobStore
from dream_engine.service.queue import GuildLimits, JobQueue
from dream_engine.service.quotas import QuotaRules, QuotaStore
from dream_engine.service.scheduler import Scheduler, SchedulerSettings
from dream_engine.service.sources import ImageSourceStore
from dream_engine.study.sweeps import VARIANTS_RANGE

log = logging.getLogger("dreambot")

# cogs.i18n sets the translator that localises the commands when setup_hook syncs them.
EXTENSIONS = (
    "cogs.i18n", "cogs.dream", "cogs.compare", "cogs.queue", "cogs.history", "cogs.admin",
)
EXECUTORS = ("process", "thread", "ray")
EXECUTOR_ALIASES = {"local": "process"}  # the word for the default
MIB = 1024 * 1024


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with defaults; documented in `.env.example`."""

    token: str = field(repr=False)
    model: str = "inceptionv3"
    weights: str = "imagenet"
    db_path: str = "data/dreambot.sqlite3"
    max_side: int = 1024  # default longest side processed; admins may lower or raise it
    # What one moving dream (a clip, a zoom) may hold by default; admins may change them.
    clip_frames: int = 48
    clip_seconds: int = 10
    clip_megapixels: int = 6
    dev_guild: int | None = None  # sync commands to this guild only (instant)
    max_queue: int = 50  # jobs waiting across all servers
    guild_queue_size: int = 10  # default jobs waiting per server
    user_limit: int = 2  # default jobs one member may hold
    max_upload_bytes: int = 25 * MIB  # refused before download above this
    max_pixels: int = DEFAULT_MAX_PIXELS  # decompression-bomb guard
    log_level: str = "INFO"
    interaction_lifetime: float = 14.5 * 60  # an interaction token lives 15 minutes
    progress_interval: float = 2.0  # seconds between progress edits of one job
    download_timeout: float = 30.0
    executor: str = "process"  # process: the engine in a supervised worker; thread: in-process
    job_timeout: float | None = None  # seconds a dream may run before its worker is stopped
    max_variants: int = 8  # most dreams one /compare may ask for
    head_weights: str | None = None  # with-classifier weights file for target: dreams
    shutdown_grace: float = 30.0  # seconds a running dream may finish at shutdown before pausing
    worker_recycle: int = 100  # jobs per worker process before a fresh one replaces it
    precision: str = "auto"  # the fastest this device and model gain from; or force one
    threads: int | None = None  # TensorFlow threads per op; None: the CPUs this process may use
    tile_size: int | None = DEFAULT_TILE_SIZE  # gradient tiles for big images; None = never
    # DREAM_EXECUTOR=ray: where the cluster is ("" starts a local Ray), how many workers
    # (None: one per GPU, or one per `worker_cpus` CPUs), how often the pool follows it.
    ray_address: str = ""
    workers: int | None = None
    worker_cpus: int = 4
    ray_poll: float = 30.0  # seconds between looks at the cluster's resources
    ray_connect_timeout: float = 30.0  # seconds to reach the cluster at start-up
    ray_reconnect: float = 10.0  # seconds between tries to rejoin a lost cluster
    history_days: int = DEFAULT_RETENTION_DAYS  # delivered dreams' metadata is kept this long
    # Where no server's admins set rules (a user-installed /dream in DMs or in a server the
    # bot is not in): dreams a member may start a day, and seconds between them (None: none).
    user_daily_limit: int | None = None
    user_cooldown: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read `DISCORD_TOKEN` and `DREAM_*` variables (after loading `.env` if present)."""
        if env is None:
            from dotenv import load_dotenv

            load_dotenv()
            env = os.environ
        token = env.get("DISCORD_TOKEN", "").strip()
        if not token:
            raise ConfigError(
                "DISCORD_TOKEN is not set: put the bot token in .env or the environment."
            )

        def number(
            name: str,
            default: float,
            kind: type = int,
            within: tuple[int, int] | None = None,
            why: str = " (what /dreamadmin allows)",  # a server's default: a value admins can set
        ) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = kind(raw)
            except ValueError:
                what = "a whole number" if kind is int else "a number"
                raise ConfigError(f"{name}={raw!r} is not {what}.") from None
            if value <= 0:
                raise ConfigError(f"{name} must be positive.")
            if within is not None and not within[0] <= value <= within[1]:
                raise ConfigError(f"{name} must be from {within[0]} to {within[1]}{why}.")
            return value

        dev_guild = env.get("DREAM_DEV_GUILD", "").strip()
        if dev_guild and not dev_guild.isdigit():
            raise ConfigError(
                f"DREAM_DEV_GUILD={dev_guild!r} is not a server id (Developer Mode on, then "
                "right-click the server > Copy Server ID)."
            )
        model = env.get("DREAM_MODEL", cls.model).strip() or cls.model
        if model not in MODELS:
            raise ConfigError(f"DREAM_MODEL must be one of {', '.join(MODELS)}.")
        precision = env.get("DREAM_PRECISION", "").strip() or cls.precision
        if precision not in PRECISION_CHOICES:
            raise ConfigError(
                f"DREAM_PRECISION must be one of {', '.join(PRECISION_CHOICES)}."
            )
        executor = env.get("DREAM_EXECUTOR", "").strip().lower() or cls.executor
        executor = EXECUTOR_ALIASES.get(executor, executor)
        if executor not in EXECUTORS:
            raise ConfigError(f"DREAM_EXECUTOR must be one of {', '.join(EXECUTORS)} (or local).")
        if executor == "ray" and importlib.util.find_spec("ray") is None:
            raise ConfigError("DREAM_EXECUTOR=ray needs Ray: pip install '.[ray]'.")
        tile_size = env.get("DREAM_TILE_SIZE", "").strip()
        if tile_size and not (tile_size.isdigit() and int(tile_size) <= MAX_TILE_SIZE):
            raise ConfigError(
                f"DREAM_TILE_SIZE must be a whole number of pixels up to {MAX_TILE_SIZE} "
                "(0 = no tiling)."
            )
        return cls(
            token=token,
            model=model,
            weights=env.get("DREAM_WEIGHTS", cls.weights).strip() or cls.weights,
            db_path=env.get("DREAM_DB", cls.db_path).strip() or cls.db_path,
            max_side=int(number("DREAM_MAX_SIDE", cls.max_side, within=MAX_SIDE_RANGE)),
            clip_frames=int(
                number("DREAM_CLIP_FRAMES", cls.clip_frames, within=CLIP_FRAMES_RANGE)
            ),
            clip_seconds=int(
                number("DREAM_CLIP_SECONDS", cls.clip_seconds, within=CLIP_SECONDS_RANGE)
            ),
            clip_megapixels=int(
                number("DREAM_CLIP_MEGAPIXELS", cls.clip_megapixels, within=CLIP_MEGAPIXELS_RANGE)
            ),
            dev_guild=int(dev_guild) if dev_guild.isdigit() else None,
            max_queue=int(number("DREAM_MAX_QUEUE", cls.max_queue)),
            guild_queue_size=int(
                number("DREAM_GUILD_QUEUE_SIZE", cls.guild_queue_size, within=QUEUE_SIZE_RANGE)
            ),
            user_limit=int(number("DREAM_USER_LIMIT", cls.user_limit, within=USER_LIMIT_RANGE)),
            max_upload_bytes=int(
                number("DREAM_MAX_UPLOAD_MB", cls.max_upload_bytes / MIB, float) * MIB
            ),
            max_pixels=int(number("DREAM_MAX_PIXELS", cls.max_pixels)),
            log_level=env.get("DREAM_LOG_LEVEL", cls.log_level).strip().upper() or cls.log_level,
            interaction_lifetime=number(
                "DREAM_INTERACTION_LIFETIME", cls.interaction_lifetime, float
            ),
            progress_interval=number("DREAM_PROGRESS_INTERVAL", cls.progress_interval, float),
            download_timeout=number("DREAM_DOWNLOAD_TIMEOUT", cls.download_timeout, float),
            executor=executor,
            job_timeout=number("DREAM_JOB_TIMEOUT", 0, float) or None,
            max_variants=int(
                number("DREAM_MAX_VARIANTS", cls.max_variants, within=VARIANTS_RANGE, why="")
            ),
            head_weights=env.get("DREAM_HEAD_WEIGHTS", "").strip() or None,
            shutdown_grace=number("DREAM_SHUTDOWN_GRACE", cls.shutdown_grace, float),
            worker_recycle=int(number("DREAM_WORKER_RECYCLE", cls.worker_recycle)),
            precision=precision,
            threads=int(number("DREAM_THREADS", 0)) or None,
            tile_size=(int(tile_size) or None) if tile_size else cls.tile_size,
            ray_address=env.get("RAY_ADDRESS", "").strip(),
            workers=int(number("DREAM_WORKERS", 0)) or None,
            worker_cpus=int(number("DREAM_WORKER_CPUS", cls.worker_cpus)),
            ray_poll=number("DREAM_RAY_POLL", cls.ray_poll, float),
            ray_connect_timeout=number("DREAM_RAY_CONNECT_TIMEOUT", cls.ray_connect_timeout, float),
            ray_reconnect=number("DREAM_RAY_RECONNECT", cls.ray_reconnect, float),
            history_days=int(number("DREAM_HISTORY_DAYS", cls.history_days)),
            user_daily_limit=int(number("DREAM_USER_DAILY_LIMIT", 0)) or None,
            user_cooldown=int(number("DREAM_USER_COOLDOWN", 0)) or None,
        )

    @property
    def user_quota_rules(self) -> QuotaRules | None:
        """The bot owner's limits where no server's apply (DMs, a user-installed app)."""
        if not (self.user_daily_limit or self.user_cooldown):
            return None
        return QuotaRules(self.user_daily_limit or 0, self.user_cooldown or 0)

    @property
    def default_limits(self) -> GuildLimits:
        """Limits where no server settings apply (direct messages)."""
        return GuildLimits(queue_size=self.guild_queue_size, user_limit=self.user_limit)

    @property
    def clip_limits(self) -> ClipLimits:
        """What one moving dream may hold where no server settings apply (direct messages)."""
        return clip_limits_of(self.guild_defaults)

    @property
    def guild_defaults(self) -> SettingsDefaults:
        return SettingsDefaults(
            queue_size=self.guild_queue_size, user_limit=self.user_limit, max_side=self.max_side,
            clip_frames=self.clip_frames, clip_seconds=self.clip_seconds,
            clip_megapixels=self.clip_megapixels,
        )  # fmt: skip


class StoresUnavailable(Exception):
    """The database could not be opened: a setting to fix, not a bug."""


class DreamTree(app_commands.CommandTree):
    """The command tree with one error handler for every app command.

    An exception no command handled would leave the member with Discord's "The
    application did not respond"; instead they get a short private message with
    a reference that the log line carries too, and the bot goes on.
    """

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        reference = secrets.token_hex(3)
        command = interaction.command.qualified_name if interaction.command else "?"
        log.error(
            "command /%s failed for %s (reference %s)",
            command, interaction.user.id, reference,
            exc_info=getattr(error, "original", error),
        )  # fmt: skip
        message = (
            f"⚠️ Something went wrong on my side (reference `{reference}`). "
            "Please try again; if it keeps happening, tell the server's admins."
        )
        with contextlib.suppress(discord.HTTPException):
            if interaction.response.is_done():
                await interaction.followup.send(message, ephemeral=True)
            else:
                await interaction.response.send_message(message, ephemeral=True)


class DreamBot(commands.Bot):
    """The bot with its shared services; cogs reach them as `self.bot.<name>`.

    `dreams` is the dream service (queue, store, workers: `Scheduler`), made once
    the database is open; the cogs accept, cancel and deliver through it.
    """

    dreams: Scheduler

    def __init__(self, settings: Settings, executor: Executor | None = None) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            tree_cls=DreamTree,
            # The bot's own commands: installed to servers, used there or in its DMs. The
            # few a member may install to their account say so (`cogs.common.usable_everywhere`).
            allowed_installs=app_commands.AppInstallationType(guild=True, user=False),
            allowed_contexts=app_commands.AppCommandContext(
                guild=True, dm_channel=True, private_channel=False
            ),
        )
        self.settings = settings
        self._owns_executor = executor is None  # a shared (test) executor outlives the bot
        self.executor: Executor = executor or build_executor(settings)
        self._executor_started = False
        self.queue = JobQueue(settings.max_queue)
        self.guild_settings: GuildSettingsStore | None = None
        self.sources: ImageSourceStore | None = None
        self.jobs: JobStore | None = None
        self.quotas: QuotaStore | None = None
        self.history: DreamHistory | None = None

    async def setup_hook(self) -> None:
        await self.open_stores()
        log.info("building the %s engine", self.settings.model)
        if self._owns_executor:
            await self.start_executor()  # compile before taking jobs
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.settings.dev_guild:
            guild = discord.Object(self.settings.dev_guild)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()

    async def open_stores(self) -> None:
        """Open (and migrate) the database, once; `main` does it before connecting, so a
        bad `DREAM_DB` is one line before login rather than a traceback after it."""
        if self.jobs is not None:
            return
        try:
            self.guild_settings = await GuildSettingsStore.open(
                self.settings.db_path, self.settings.guild_defaults
            )
            self.sources = await ImageSourceStore.open(self.settings.db_path)
            self.jobs = await JobStore.open(self.settings.db_path)
            self.quotas = await QuotaStore.open(self.settings.db_path)
            self.history = await DreamHistory.open(
                self.settings.db_path, self.settings.history_days
            )
            self.dreams = Scheduler(
                self.queue,
                self.jobs,
                self.executor,
                SchedulerSettings(
                    shutdown_grace=self.settings.shutdown_grace,
                    progress_interval=self.settings.progress_interval,
                    max_pixels=self.settings.max_pixels,
                ),
                self.history,
            )
        except (sqlite3.Error, MigrationError, OSError) as error:
            await self._close_stores()
            raise StoresUnavailable(
                f"cannot open the database DREAM_DB={self.settings.db_path} ({error})."
            ) from error

    async def start_executor(self) -> None:
        """Build the engine (or join the cluster), once; `main` does it before connecting."""
        if not self._executor_started:
            await self.executor.start()  # a failed start may be tried again
            self._executor_started = True

    async def close(self) -> None:
        """Stop taking jobs, save the queue (the dream cog does), close the database and engine."""
        for extension in list(self.extensions):
            with contextlib.suppress(Exception):
                await self.unload_extension(extension)  # cogs tell their users in cog_unload
        await super().close()
        if self._owns_executor:
            await self.executor.close()
        await self._close_stores()

    async def _close_stores(self) -> None:
        # discord.py may call close() again from connect(); close each store once.
        stores = (self.guild_settings, self.sources, self.jobs, self.quotas, self.history)
        self.guild_settings, self.sources, self.jobs, self.quotas = None, None, None, None
        self.history = None
        for store in stores:
            if store is not None:
                await store.close()


def build_executor(settings: Settings) -> Executor:
    """The executor `DREAM_EXECUTOR` names; the cogs never know which one runs."""
    config = EngineConfig(
        model=settings.model,
        weights=settings.weights,
        precision=settings.precision,
        threads=settings.threads,
        tile_size=settings.tile_size,
        head_weights=settings.head_weights,
        warm_up=load_preset(default_preset_for(settings.model)),
    )
    if settings.executor == "thread":
        return LocalExecutor(config)
    if settings.executor == "ray":
        from dream_engine.runtime.ray_supervisor import SupervisedRayExecutor  # Ray: in its driver

        return SupervisedRayExecutor(
            config,
            address=settings.ray_address or None,
            max_workers=settings.workers,
            worker_cpus=settings.worker_cpus,
            poll_seconds=settings.ray_poll,
            connect_timeout=settings.ray_connect_timeout,
            job_timeout=settings.job_timeout,
            recycle_after=settings.worker_recycle,
            reconnect_seconds=settings.ray_reconnect,
        )
    from dream_engine.runtime.process import ProcessExecutor

    return ProcessExecutor(
        config, job_timeout=settings.job_timeout, recycle_after=settings.worker_recycle
    )


def create_bot(settings: Settings, executor: Executor | None = None) -> DreamBot:
    """The bot, not yet connected (tests point it at a fake Discord first)."""
    return DreamBot(settings, executor)


def close_on_signals(bot: DreamBot) -> None:
    """SIGTERM (docker stop, systemd) and Ctrl-C close the bot the graceful way.

    `bot.close()` stops taking jobs, lets the running dream finish within
    `shutdown_grace` or pauses it, and leaves every unfinished job saved for
    the next start.
    """
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: asyncio.ensure_future(bot.close()))


async def _run(settings: Settings) -> int:
    bot = create_bot(settings)
    try:
        await bot.open_stores()
        await bot.start_executor()  # before Discord: an unreachable cluster is exit 2, no hang
    except (StoresUnavailable, ExecutorUnavailable, UserError) as error:  # weights, model
        print(f"error: {error}", file=sys.stderr)
        with contextlib.suppress(Exception):
            await bot.executor.close()
        with contextlib.suppress(Exception):
            await bot._close_stores()
        return 2
    close_on_signals(bot)
    try:
        async with bot:
            await bot.start(settings.token)
    except discord.LoginFailure:
        print(
            "error: Discord refused DISCORD_TOKEN; copy it again (Developer Portal > your "
            "application > Bot > Reset Token).",
            file=sys.stderr,
        )
        return 2
    except (aiohttp.ClientConnectionError, TimeoutError) as error:  # at login; later ones retry
        print(f"error: could not reach Discord ({error}); check the network.", file=sys.stderr)
        return 3
    return 0


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    discord.utils.setup_logging(level=getattr(logging, settings.log_level, logging.INFO))
    return asyncio.run(_run(settings))


if __name__ == "__main__":
    sys.exit(main())
