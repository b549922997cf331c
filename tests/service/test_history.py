"""The dream history (`service/history.py`) on a real SQLite file, without Discord."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from dream_engine.core.params import DreamParams
from dream_engine.motion.spec import MotionSpec
from dream_engine.service.history import DAY_SECONDS, DreamEntry, DreamHistory

pytestmark = pytest.mark.asyncio(loop_scope="function")

NOON = datetime(2026, 12, 3, 12, tzinfo=UTC).timestamp()  # a Thursday, midday UTC


def entry(job_id: str, *, at: float = NOON, **changes) -> DreamEntry:
    base = DreamEntry(
        job_id=job_id, guild_id=1, channel_id=10, message_id=100, user_id=7, preset="balanced",
        params=DreamParams(layers={"mixed3": 0.5, "mixed5": 1.0}, seed=4, jitter=16),
        changed={"seed": 4}, source_id=3, guide_source_id=None, guide_name=None, motion=None,
        variants=0, gallery=False, animate=False, spoiler=False, max_side=512,
        precision="mixed_bfloat16", width=512, height=341, accepted_at=at - 30,
        started_at=at - 20, finished_at=at, run_seconds=18.5,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


async def test_an_entry_reads_back_as_it_was_written(tmp_path):
    history = await DreamHistory.open(tmp_path / "h.sqlite3")
    try:
        zoom = MotionSpec("zoom", frames=12, zoom=1.1, format="gif")
        written = entry("abc", motion=zoom, guide_name="eye.png", guide_source_id=9)
        await history.record(written)
        assert await history.get("abc") == written
        assert await history.get("nope") is None
        assert written.wait_seconds == 10
        assert written.jump_url() == "https://discord.com/channels/1/10/100"
        assert entry("x", guild_id=None).jump_url() == "https://discord.com/channels/@me/10/100"
        assert entry("y", message_id=None).jump_url() is None
    finally:
        await history.close()


async def test_a_members_recent_dreams_are_theirs_in_that_server_newest_first(tmp_path):
    history = await DreamHistory.open(tmp_path / "h.sqlite3")
    try:
        for n in range(12):
            await history.record(entry(f"j{n}", at=NOON + n))
        await history.record(entry("other-server", guild_id=2, at=NOON + 50))
        await history.record(entry("other-member", user_id=8, at=NOON + 50))
        await history.record(entry("in-dms", guild_id=None, at=NOON + 50))
        recent = await history.recent(1, 7)
        assert [e.job_id for e in recent] == [f"j{n}" for n in range(11, 1, -1)]  # the last 10
        assert [e.job_id for e in await history.recent(None, 7)] == ["in-dms"]
        assert [e.job_id for e in await history.recent(2, 7, limit=3)] == ["other-server"]
    finally:
        await history.close()


async def test_entries_past_the_retention_are_pruned(tmp_path):
    history = await DreamHistory.open(tmp_path / "h.sqlite3", retention_days=30)
    try:
        await history.record(entry("old", at=NOON - 31 * DAY_SECONDS))
        await history.record(entry("kept", at=NOON - 29 * DAY_SECONDS))
        assert await history.get("old") is not None  # nothing newer has come yet
        await history.record(entry("new", at=NOON))
        assert await history.get("old") is None
        assert await history.get("kept") is not None
    finally:
        await history.close()


async def test_a_week_of_stats_counts_every_day_and_takes_medians(tmp_path):
    history = await DreamHistory.open(tmp_path / "h.sqlite3")
    try:
        runs = [(0, "balanced", 10, 4), (0, "balanced", 30, 8), (2, "upper-layers", 20, 6),
                (6, "balanced", 40, 100), (8, "balanced", 1, 1)]  # fmt: skip
        for n, (days_ago, preset, run, wait) in enumerate(runs):
            at = NOON - days_ago * DAY_SECONDS
            await history.record(
                entry(f"j{n}", at=at, preset=preset, run_seconds=run, started_at=at - run,
                      accepted_at=at - run - wait)
            )  # fmt: skip
        await history.record(entry("elsewhere", guild_id=2))
        stats = await history.week(1, now=NOON)
        assert stats.per_day[0][0].isoformat() == "2026-11-27"
        assert [count for _, count in stats.per_day] == [1, 0, 0, 0, 1, 0, 2]
        assert stats.total == 4  # eight days ago is outside the week
        assert stats.median_run == 25 and stats.median_wait == 7
        assert stats.top_presets == [("balanced", 3), ("upper-layers", 1)]
        empty = await history.week(3, now=NOON)
        assert empty.total == 0 and empty.median_run is None and empty.top_presets == []
    finally:
        await history.close()
