"""Per-server settings: defaults, validation, channels, isolation, restarts, migrations."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dream_engine.errors import ParamError
from dream_engine.service.database import (
    MIGRATIONS_DIR,
    MigrationError,
    apply_migrations,
    discover_migrations,
    open_database,
    schema_version,
)
from dream_engine.service.guild_settings import (
    MAX_CHANNELS,
    MAX_SIDE_RANGE,
    QUEUE_SIZE_RANGE,
    USER_LIMIT_RANGE,
    GuildSettings,
    GuildSettingsStore,
    SettingsDefaults,
)
from dream_engine.service.queue import GuildLimits
from dream_engine.service.quotas import QuotaRules
from dream_engine.service.sources import ImageSource, ImageSourceStore
from tests.conftest import REPO

DEFAULTS = SettingsDefaults(queue_size=10, user_limit=2, max_side=1024)
GUILD_A, GUILD_B = 111, 222
LATEST = discover_migrations()[-1].version
RANGES = {
    "queue_size": QUEUE_SIZE_RANGE,
    "user_limit": USER_LIMIT_RANGE,
    "max_side": MAX_SIDE_RANGE,
}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "bot.sqlite3"  # parent does not exist yet: open creates it


async def open_store(path: Path, defaults: SettingsDefaults = DEFAULTS) -> GuildSettingsStore:
    return await GuildSettingsStore.open(path, defaults)


async def versions(path: Path) -> list[int]:
    db = await open_database(path)
    try:
        return [row[0] for row in await db.execute_fetchall("SELECT version FROM schema_version")]
    finally:
        await db.close()


def migrations_copy(tmp_path: Path, *, up_to: int) -> Path:
    """A private migrations dir with the shipped files up to `up_to`, to add test files to."""
    directory = tmp_path / f"migrations-{up_to}"
    directory.mkdir()
    for migration in discover_migrations():
        if migration.version <= up_to:
            shutil.copy(migration.path, directory)
    return directory


# --- defaults and persistence ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_defaults_when_nothing_stored(db_path):
    async with await open_store(db_path) as store:
        got = await store.get(GUILD_A)
    assert got == GuildSettings(GUILD_A, queue_size=10, user_limit=2, max_side=1024)
    assert got.channels == frozenset() and got.overridden == frozenset()
    assert db_path.is_file()


@pytest.mark.asyncio
async def test_reading_stores_nothing(db_path):
    async with await open_store(db_path) as store:
        await store.get(GUILD_A)
    db = await open_database(db_path)
    assert await db.execute_fetchall("SELECT * FROM guild_settings") == []
    await db.close()


@pytest.mark.asyncio
async def test_memory_database_works():
    async with await GuildSettingsStore.open(":memory:", DEFAULTS) as store:
        assert (await store.update(GUILD_A, queue_size=5)).queue_size == 5


@pytest.mark.asyncio
async def test_update_survives_a_restart(db_path):
    async with await open_store(db_path) as store:
        updated = await store.update(GUILD_A, queue_size=42, max_side=512)
        await store.set_channels(GUILD_A, [7, 8])
    assert (updated.queue_size, updated.user_limit, updated.max_side) == (42, 2, 512)

    async with await open_store(db_path) as store:  # a new process, the same file
        again = await store.get(GUILD_A)
    assert (again.queue_size, again.user_limit, again.max_side) == (42, 2, 512)
    assert again.channels == {7, 8}


@pytest.mark.asyncio
async def test_only_the_given_fields_change(db_path):
    async with await open_store(db_path) as store:
        await store.update(GUILD_A, queue_size=5, user_limit=3, max_side=256)
        got = await store.update(GUILD_A, user_limit=7)
        unchanged = await store.update(GUILD_A)
    assert (got.queue_size, got.user_limit, got.max_side) == (5, 7, 256)
    assert unchanged == got


@pytest.mark.asyncio
async def test_changed_config_defaults_reach_only_unset_fields(db_path):
    async with await open_store(db_path) as store:
        await store.update(GUILD_A, queue_size=42)

    new_defaults = SettingsDefaults(queue_size=20, user_limit=5, max_side=2048)
    async with await open_store(db_path, new_defaults) as store:
        a, b = await store.get(GUILD_A), await store.get(GUILD_B)
    assert (a.queue_size, a.user_limit, a.max_side) == (42, 5, 2048)
    assert (b.queue_size, b.user_limit, b.max_side) == (20, 5, 2048)


@pytest.mark.asyncio
async def test_reset_goes_back_to_defaults(db_path):
    async with await open_store(db_path) as store:
        await store.update(GUILD_A, queue_size=42, user_limit=9, max_side=100)
        await store.set_channels(GUILD_A, [1, 2, 3])
        got = await store.reset(GUILD_A)
    assert got == GuildSettings(GUILD_A, queue_size=10, user_limit=2, max_side=1024)
    async with await open_store(db_path) as store:
        assert await store.get(GUILD_A) == got


@pytest.mark.asyncio
async def test_stored_value_outside_a_narrowed_range_is_clamped(db_path):
    async with await open_store(db_path) as store:
        await store.update(GUILD_A, max_side=512)
    db = await open_database(db_path)  # as if a later release narrowed the range
    await db.execute("UPDATE guild_settings SET max_side = 99999, queue_size = 0")
    await db.close()
    async with await open_store(db_path) as store:
        got = await store.get(GUILD_A)
    assert got.max_side == MAX_SIDE_RANGE[1] and got.queue_size == QUEUE_SIZE_RANGE[0]
    assert not got.is_default("max_side")


# --- validation -----------------------------------------------------------------------------


def bad_values(name: str) -> list[object]:
    low, high = RANGES[name]
    return [0, -1, low - 1, high + 1, 10**12, 2.5, float(low), "5", True]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name in RANGES for value in bad_values(name)]
)
async def test_out_of_range_values_are_refused_naming_setting_and_range(db_path, name, value):
    low, high = RANGES[name]
    async with await open_store(db_path) as store:
        await store.update(GUILD_A, queue_size=50)
        with pytest.raises(ParamError) as raised:
            # A valid field beside the bad one: nothing is written unless everything is valid.
            valid = {"queue_size": 60} if name == "user_limit" else {"user_limit": 3}
            await store.update(GUILD_A, **{name: value}, **valid)
        got = await store.get(GUILD_A)
    message = str(raised.value)
    assert name in message and f"{low} to {high}" in message
    assert (got.queue_size, got.user_limit) == (50, 2)


@pytest.mark.asyncio
@pytest.mark.parametrize("name", list(RANGES))
async def test_range_ends_are_accepted(db_path, name):
    async with await open_store(db_path) as store:
        for value in RANGES[name]:
            assert getattr(await store.update(GUILD_A, **{name: value}), name) == value


@pytest.mark.parametrize("name", list(RANGES))
def test_defaults_outside_the_ranges_are_refused(name):
    with pytest.raises(ParamError, match=f"default {name}"):
        SettingsDefaults(**{name: RANGES[name][1] + 1})


@pytest.mark.asyncio
async def test_bad_ids(db_path):
    async with await open_store(db_path) as store:
        for bad in (0, -5, 2**63, "123", True):
            with pytest.raises(ParamError):
                await store.add_channel(GUILD_A, bad)
            with pytest.raises(ValueError):
                await store.get(bad)
        with pytest.raises(ParamError):
            await store.set_channels(GUILD_A, [1, 0])
        assert (await store.get(GUILD_A)).channels == frozenset()


# --- channels -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_channels_set_add_remove_and_empty_means_everywhere(db_path):
    async with await open_store(db_path) as store:
        everywhere = await store.get(GUILD_A)
        assert everywhere.allows_channel(1) and everywhere.allows_channel(999)

        got = await store.set_channels(GUILD_A, [5, 6, 6])
        assert got.channels == {5, 6}
        assert got.allows_channel(5) and not got.allows_channel(7)

        assert (await store.add_channel(GUILD_A, 7)).channels == {5, 6, 7}
        assert (await store.add_channel(GUILD_A, 7)).channels == {5, 6, 7}  # no-op
        assert (await store.remove_channel(GUILD_A, 5)).channels == {6, 7}
        assert (await store.remove_channel(GUILD_A, 5)).channels == {6, 7}  # no-op
        assert (await store.set_channels(GUILD_A, [8])).channels == {8}  # replaces

        emptied = await store.set_channels(GUILD_A, [])
        assert emptied.channels == frozenset() and emptied.allows_channel(123)
        await store.add_channel(GUILD_A, 9)
        last_removed = await store.remove_channel(GUILD_A, 9)
        assert last_removed.allows_channel(123)  # the last one gone: everywhere again


@pytest.mark.asyncio
async def test_channels_are_capped(db_path):
    full = range(1, MAX_CHANNELS + 1)
    async with await open_store(db_path) as store:
        with pytest.raises(ParamError, match=str(MAX_CHANNELS)):
            await store.set_channels(GUILD_A, range(1, MAX_CHANNELS + 2))
        assert (await store.set_channels(GUILD_A, full)).channels == set(full)
        with pytest.raises(ParamError, match=str(MAX_CHANNELS)):
            await store.add_channel(GUILD_A, 1000)
        assert (await store.add_channel(GUILD_A, 1)).channels == set(full)  # already there
        assert (await store.get(GUILD_A)).channels == set(full)


@pytest.mark.asyncio
async def test_channels_keep_settings_and_settings_keep_channels(db_path):
    async with await open_store(db_path) as store:
        await store.add_channel(GUILD_A, 5)
        got = await store.update(GUILD_A, user_limit=4)
        assert got.channels == {5} and got.user_limit == 4
        got = await store.set_channels(GUILD_A, [])
        assert got.user_limit == 4


# --- isolation ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_one_guild_never_changes_another(db_path):
    async with await open_store(db_path) as store:
        b_before = await store.update(GUILD_B, queue_size=77, user_limit=7, max_side=777)
        b_before = await store.set_channels(GUILD_B, [70, 71])

        await store.update(GUILD_A, queue_size=1, user_limit=1, max_side=64)
        assert await store.get(GUILD_B) == b_before
        await store.set_channels(GUILD_A, [70, 10])  # the same channel id in both lists
        await store.add_channel(GUILD_A, 71)
        await store.remove_channel(GUILD_A, 70)
        assert await store.get(GUILD_B) == b_before
        await store.reset(GUILD_A)
        assert await store.get(GUILD_B) == b_before


OPS = st.lists(
    st.tuples(
        st.sampled_from([GUILD_A, GUILD_B]),
        st.sampled_from(["queue_size", "user_limit", "max_side", "add", "remove", "set", "reset"]),
        st.integers(min_value=1, max_value=20),
    ),
    max_size=25,
)


@settings(max_examples=40)
@given(ops=OPS)
def test_any_sequence_of_operations_matches_a_model(ops):
    """Whatever admins do, each guild ends up exactly as if it were alone."""

    async def run() -> None:
        model: dict[int, dict[str, object]] = {GUILD_A: {}, GUILD_B: {}}
        async with await GuildSettingsStore.open(":memory:", DEFAULTS) as store:
            for guild, op, value in ops:
                state = model[guild]
                channels = set(state.get("channels", set()))  # type: ignore[call-overload]
                if op in RANGES:
                    value += RANGES[op][0] - 1  # 1..20 shifted into the setting's range
                    await store.update(guild, **{op: value})
                    state[op] = value
                elif op == "add":
                    await store.add_channel(guild, value)
                    state["channels"] = channels | {value}
                elif op == "remove":
                    await store.remove_channel(guild, value)
                    state["channels"] = channels - {value}
                elif op == "set":
                    await store.set_channels(guild, range(value, value + 3))
                    state["channels"] = set(range(value, value + 3))
                else:
                    await store.reset(guild)
                    state.clear()
                for other, expected in model.items():
                    got = await store.get(other)
                    for name in RANGES:
                        assert getattr(got, name) == expected.get(name, getattr(DEFAULTS, name))
                    assert got.channels == expected.get("channels", set())

    asyncio.run(run())


# --- concurrency ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_fifty_concurrent_updates_all_land(db_path):
    async with await open_store(db_path) as store:
        guilds = range(1000, 1050)
        await asyncio.gather(*(store.update(g, queue_size=g % 100 + 1) for g in guilds))
        for guild in guilds:
            assert (await store.get(guild)).queue_size == guild % 100 + 1

        # Many tasks changing different fields of one guild: none undoes another.
        wanted = {"queue_size": 33, "user_limit": 4, "max_side": 555}
        names = [list(wanted)[i % 3] for i in range(50)]
        await asyncio.gather(*(store.update(GUILD_A, **{name: wanted[name]}) for name in names))
        got = await store.get(GUILD_A)
        assert (got.queue_size, got.user_limit, got.max_side) == (33, 4, 555)
        assert got.overridden == set(wanted)


@pytest.mark.asyncio
async def test_concurrent_channel_adds_all_land_up_to_the_cap(db_path):
    async with await open_store(db_path) as store:
        results = await asyncio.gather(
            *(store.add_channel(GUILD_A, channel) for channel in range(1, 51)),
            return_exceptions=True,
        )
        refused = [result for result in results if isinstance(result, ParamError)]
        assert len(refused) == 50 - MAX_CHANNELS
        assert (await store.get(GUILD_A)).channels == set(range(1, MAX_CHANNELS + 1))


@pytest.mark.asyncio
async def test_two_stores_on_one_file_see_each_others_writes(db_path):
    async with await open_store(db_path) as first, await open_store(db_path) as second:
        await asyncio.gather(
            *(first.update(GUILD_A, queue_size=5) for _ in range(10)),
            *(second.update(GUILD_A, user_limit=6) for _ in range(10)),
        )
        got = await first.get(GUILD_A)
    assert (got.queue_size, got.user_limit) == (5, 6)


# --- the view ------------------------------------------------------------------------------


def test_limits_and_allows_channel():
    settings_ = GuildSettings(
        GUILD_A, queue_size=3, user_limit=1, max_side=512, channels=frozenset({9})
    )
    assert settings_.limits() == GuildLimits(queue_size=3, user_limit=1)
    assert settings_.allows_channel(9) and not settings_.allows_channel(10)
    assert GuildSettings(GUILD_A, 3, 1, 512).allows_channel(10)


@pytest.mark.asyncio
async def test_describe_marks_defaults(db_path):
    async with await open_store(db_path) as store:
        assert (await store.get(GUILD_A)).describe() == [
            ("Queue size", "10 (default)"),
            ("User limit", "2 (default)"),
            ("Max side", "1024 px (default)"),
            ("Clip frames", "48 (default)"),
            ("Clip seconds", "10 s (default)"),
            ("Clip pixels", "6 million (default)"),
            ("Daily limit", "none (default)"),
            ("Cooldown", "none (default)"),
            ("Spoilers", "off (default)"),
            ("Exempt roles", "none (admins always are)"),
            ("Channels", "everywhere (default)"),
        ]
        await store.update(GUILD_A, queue_size=10, max_side=800)  # 10 chosen, though default
        await store.update(GUILD_A, clip_frames=24, clip_megapixels=3, daily_limit=5, cooldown=30)
        await store.update(GUILD_A, spoiler=1)
        await store.exempt_role(GUILD_A, 77, exempt=True)
        await store.exempt_role(GUILD_A, 66, exempt=True)
        await store.exempt_role(GUILD_A, 77, exempt=False)
        got = await store.set_channels(GUILD_A, [20, 3])
    assert got.describe() == [
        ("Queue size", "10"),
        ("User limit", "2 (default)"),
        ("Max side", "800 px"),
        ("Clip frames", "24"),
        ("Clip seconds", "10 s (default)"),
        ("Clip pixels", "3 million"),
        ("Daily limit", "5"),
        ("Cooldown", "30 s"),
        ("Spoilers", "on"),
        ("Exempt roles", "<@&66>"),
        ("Channels", "<#3>, <#20>"),
    ]
    assert got.quota_rules() == QuotaRules(daily_limit=5, cooldown=30)
    async with await open_store(db_path) as store:
        assert (await store.reset(GUILD_A)).exempt_roles == frozenset()
    limits = got.clip_limits()
    assert (limits.max_frames, limits.max_seconds, limits.max_pixels) == (24, 10.0, 3_000_000)


# --- migrations -----------------------------------------------------------------------------


def test_shipped_migrations_are_found_next_to_the_package():
    assert MIGRATIONS_DIR.parent == REPO / "dream_engine" / "service"
    assert MIGRATIONS_DIR.name == "migrations"
    shipped = discover_migrations()
    assert shipped[0].path.name == "V1__guild_settings.sql"
    assert [m.version for m in shipped] == list(range(1, LATEST + 1))


@pytest.mark.asyncio
async def test_fresh_database_is_at_the_latest_version(db_path):
    db = await open_database(db_path)
    assert await schema_version(db) == LATEST
    assert (await db.execute_fetchall("PRAGMA journal_mode"))[0][0] == "wal"
    assert (await db.execute_fetchall("PRAGMA foreign_keys"))[0][0] == 1
    await db.close()
    assert await versions(db_path) == list(range(1, LATEST + 1))


@pytest.mark.asyncio
async def test_reopening_applies_nothing_twice(db_path):
    async with await open_store(db_path) as store:
        await store.update(GUILD_A, queue_size=3)
    db = await open_database(db_path)
    assert await apply_migrations(db) == []
    await db.close()
    assert await versions(db_path) == list(range(1, LATEST + 1))
    async with await open_store(db_path) as store:
        assert (await store.get(GUILD_A)).queue_size == 3


@pytest.mark.asyncio
async def test_concurrent_opens_of_a_new_file_apply_each_migration_once(db_path):
    connections = await asyncio.gather(*(open_database(db_path) for _ in range(5)))
    for db in connections:
        assert await schema_version(db) == LATEST
        await db.close()
    assert await versions(db_path) == list(range(1, LATEST + 1))


@pytest.mark.asyncio
async def test_database_at_v1_gets_a_later_migration_and_keeps_its_settings(tmp_path, db_path):
    v1_only = migrations_copy(tmp_path, up_to=1)
    db = await open_database(db_path, v1_only)  # what a V1 bot wrote (today's store reads more)
    await db.execute("INSERT INTO guild_settings (guild_id, queue_size) VALUES (?, 42)", (GUILD_A,))
    await db.executemany(
        "INSERT INTO guild_channels (guild_id, channel_id) VALUES (?, ?)",
        [(GUILD_A, 5), (GUILD_A, 6)],
    )
    await db.commit()
    await db.close()

    # V2 rebuilds guild_settings the way SQLite changes a table: copy, drop, rename.
    # With foreign keys on, the DROP would cascade-delete the server's channels.
    (v1_only / "V2__rebuild_settings.sql").write_text(
        """
        CREATE TABLE guild_settings_new (
            guild_id INTEGER PRIMARY KEY, queue_size INTEGER, user_limit INTEGER,
            max_side INTEGER, updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
            theme TEXT NOT NULL DEFAULT 'dreamy'
        );
        INSERT INTO guild_settings_new (guild_id, queue_size, user_limit, max_side, updated_at)
            SELECT guild_id, queue_size, user_limit, max_side, updated_at FROM guild_settings;
        DROP TABLE guild_settings;
        ALTER TABLE guild_settings_new RENAME TO guild_settings;
        """
    )
    db = await open_database(db_path, v1_only)
    assert await schema_version(db) == 2
    assert await db.execute_fetchall("SELECT theme FROM guild_settings") == [("dreamy",)]
    assert await apply_migrations(db, v1_only) == []
    kept = await db.execute_fetchall("SELECT queue_size FROM guild_settings")
    channels = await db.execute_fetchall("SELECT channel_id FROM guild_channels ORDER BY 1")
    await db.close()
    assert list(kept) == [(42,)] and list(channels) == [(5,), (6,)]


@pytest.mark.asyncio
async def test_a_failing_migration_changes_nothing(tmp_path, db_path):
    directory = migrations_copy(tmp_path, up_to=1)
    db = await open_database(db_path, directory)
    await db.close()
    (directory / "V2__broken.sql").write_text(
        "CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n"
    )
    with pytest.raises(MigrationError, match=r"V2__broken\.sql"):
        await open_database(db_path, directory)

    (directory / "V2__broken.sql").unlink()
    db = await open_database(db_path, directory)
    tables = {row[0] for row in await db.execute_fetchall("SELECT name FROM sqlite_master")}
    assert await schema_version(db) == 1 and "half_done" not in tables
    await db.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("files", "error"),
    [
        ({"V2__a.sql": "", "V2__b.sql": ""}, "both version 2"),
        ({"v2-jobs.sql": ""}, "V<number>__<name>.sql"),
        ({"V2__commits.sql": "CREATE TABLE t (x INTEGER); COMMIT;"}, "must not contain"),
    ],
)
async def test_bad_migration_files_are_refused(tmp_path, db_path, files, error):
    directory = migrations_copy(tmp_path, up_to=1)
    for name, text in files.items():
        (directory / name).write_text(text)
    with pytest.raises(MigrationError, match=error):
        await open_database(db_path, directory)


def test_missing_migrations_dir_says_so(tmp_path):
    with pytest.raises(MigrationError, match="installed with its SQL files"):
        discover_migrations(tmp_path / "nowhere")


@pytest.mark.asyncio
async def test_v6_lets_a_source_have_no_size_and_keeps_the_sources_saved_before(tmp_path, db_path):
    before = migrations_copy(tmp_path, up_to=5)
    old = ImageSourceStore(await open_database(db_path, before))
    kept = await old.save(
        ImageSource.unsaved(url="https://cdn/a.png", filename="a.png", size=1234,
                            content_type="image/png", guild_id=GUILD_A, user_id=7)
    )  # fmt: skip
    await old.close()

    store = await ImageSourceStore.open(db_path)  # every shipped migration: V6 too
    shown = await store.save(  # an embed's picture: no size until it is downloaded
        ImageSource.unsaved(url="https://media/b.png", filename="b.png", size=None,
                            content_type=None, guild_id=GUILD_A, user_id=7)
    )  # fmt: skip
    assert (await store.get(kept.id)).size == 1234
    assert (await store.get(shown.id)).size is None
    await store.close()
