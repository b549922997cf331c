"""The bot's SQLite database: one file, its schema grown by numbered migrations.

Migrations work the RoboDanny way: `migrations/V<number>__<name>.sql`, applied
in version order when the database is opened, each inside its own transaction
and recorded in `schema_version`, so a failed upgrade leaves the database as it
was and a server's settings are never half-migrated. Applied files are never
run again; to change the schema, add the next file rather than editing an old one.

Connections are in autocommit mode: every statement commits by itself, and a
group of statements that must land together goes inside `transaction(db)`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

__all__ = [
    "MIGRATIONS_DIR",
    "Migration",
    "MigrationError",
    "apply_migrations",
    "discover_migrations",
    "open_database",
    "schema_version",
    "transaction",
]

log = logging.getLogger(__name__)

#: The SQL files shipped inside the package (package data, next to this module).
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

_MIGRATION_FILE = re.compile(r"V([1-9][0-9]*)__(\w+)\.sql")

#: How long a statement waits for another connection's write lock before failing.
BUSY_TIMEOUT_MS = 30_000  # a write waits rather than fail: a failed job save refuses the job
_WAL_ATTEMPTS = 100  # x 50 ms


class MigrationError(RuntimeError):
    """The schema cannot be brought up to date; the message names the file."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; misnamed or duplicate versions are errors.

    Loud rather than skipped: a `v2-jobs.sql` silently ignored, or two engineers'
    `V2__...` files, would otherwise leave a schema that differs between servers.
    """
    if not directory.is_dir():
        raise MigrationError(
            f"no migrations directory at {directory}; is the package installed with its SQL files?"
        )
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.fullmatch(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named V<number>__<name>.sql")
        version = int(match[1])
        if version in migrations:
            raise MigrationError(
                f"{path.name} and {migrations[version].path.name} are both version {version}"
            )
        migrations[version] = Migration(version, match[2], path)
    if not migrations:
        raise MigrationError(f"no V<number>__<name>.sql files in {directory}")
    return [migrations[version] for version in sorted(migrations)]


async def schema_version(db: aiosqlite.Connection) -> int:
    """The highest migration applied to this database (0 for a new one)."""
    return max(await _applied_versions(db), default=0)


async def _applied_versions(db: aiosqlite.Connection) -> set[int]:
    await db.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL,"
        " applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    return {row[0] for row in await db.execute_fetchall("SELECT version FROM schema_version")}


async def apply_migrations(db: aiosqlite.Connection, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply the files not yet recorded in `schema_version`, in order; return their versions.

    Call with foreign keys off (as `open_database` does): SQLite's way to change a
    table is to rebuild it, and dropping the old table with foreign keys on would
    cascade-delete the rows that point at it. `PRAGMA foreign_key_check` runs
    before each commit instead, so a migration cannot leave dangling references.
    """
    migrations = discover_migrations(directory)
    applied = await _applied_versions(db)
    if applied and max(applied) > migrations[-1].version:
        log.warning(
            "the database is at schema V%d but this code only knows up to V%d",
            max(applied),
            migrations[-1].version,
        )
    done: list[int] = []
    for migration in migrations:
        if migration.version not in applied and await _apply(db, migration):
            done.append(migration.version)
    return done


async def _apply(db: aiosqlite.Connection, migration: Migration) -> bool:
    """Run one file in one transaction; False if another connection applied it first."""
    script = migration.path.read_text(encoding="utf-8")
    try:
        # BEGIN inside the script: executescript() would commit a transaction opened before it.
        await db.executescript(f"BEGIN IMMEDIATE;\n{script}\n")
        if not db.in_transaction:
            raise MigrationError(f"{migration.path.name} must not contain BEGIN, COMMIT or END")
        if await db.execute_fetchall("PRAGMA foreign_key_check"):
            raise MigrationError(f"{migration.path.name} leaves rows with dangling foreign keys")
        await db.execute(
            "INSERT INTO schema_version (version, name) VALUES (?, ?)",
            (migration.version, migration.name),
        )
        await db.commit()
    except sqlite3.Error as error:
        await db.rollback()
        # Two connections opening a new file at once both try V1; the loser finds it done.
        if migration.version in await _applied_versions(db):
            return False
        raise MigrationError(f"{migration.path.name} failed: {error}") from error
    except BaseException:
        await db.rollback()
        raise
    log.info("applied migration %s", migration.path.name)
    return True


async def open_database(
    path: str | Path, migrations_dir: Path = MIGRATIONS_DIR
) -> aiosqlite.Connection:
    """Connect (creating parent directories), set WAL and foreign keys, apply migrations.

    WAL lets several connections (settings, jobs, ...) read while one writes.
    `":memory:"` gives a private, throwaway database, for tests.
    """
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await _enable_wal(db)
        await db.execute("PRAGMA foreign_keys = OFF")  # see apply_migrations
        await apply_migrations(db, migrations_dir)
        await db.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        await db.close()
        raise
    return db


async def _enable_wal(db: aiosqlite.Connection) -> None:
    """Switch to WAL, retrying: here SQLite answers "locked" at once instead of waiting.

    That happens when two connections open a new file together (two stores at start-up).
    """
    for attempt in range(_WAL_ATTEMPTS):
        try:
            await db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == _WAL_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.05)


@asynccontextmanager
async def transaction(db: aiosqlite.Connection) -> AsyncIterator[None]:
    """Statements inside commit together or not at all.

    IMMEDIATE takes the write lock up front, so a read-then-write inside cannot be
    overtaken by another connection. A connection runs one transaction at a time:
    callers sharing one between tasks serialise them (e.g. with an `asyncio.Lock`).
    """
    await db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        await db.rollback()
        raise
    await db.commit()
