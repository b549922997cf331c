"""Daily limits and cooldowns (`service/quotas.py`) on a real SQLite file, without Discord."""

from __future__ import annotations

import asyncio

import pytest

from dream_engine.service.quotas import DAY_SECONDS, QuotaExceeded, QuotaRules, QuotaStore

pytestmark = pytest.mark.asyncio(loop_scope="function")

T0 = 1_800_000_000.0


async def test_the_daily_limit_rolls_a_day_after_each_start(tmp_path):
    store = await QuotaStore.open(tmp_path / "q.sqlite3")
    rules = QuotaRules(daily_limit=2)
    try:
        await store.reserve(1, 7, rules, now=T0)
        await store.reserve(1, 7, rules, now=T0 + 3600)
        with pytest.raises(QuotaExceeded) as refused:
            await store.reserve(1, 7, rules, now=T0 + 7200)
        assert refused.value.until == T0 + DAY_SECONDS  # the oldest start's place frees up
        assert f"<t:{int(T0 + DAY_SECONDS) + 1}:R>" in str(refused.value)
        assert "your 2 dreams for today" in str(refused.value)
        # Typed, so that the bot says it in the member's language (cogs/refusals.py).
        assert (refused.value.kind, refused.value.limit) == ("daily", 2)
        assert refused.value.starts_at == int(T0 + DAY_SECONDS) + 1
        await store.reserve(2, 7, rules, now=T0 + 7200)  # another server counts apart
        await store.reserve(1, 8, rules, now=T0 + 7200)  # and another member
        await store.reserve(1, 7, rules, now=T0 + DAY_SECONDS + 1)  # a day on: a place again
    finally:
        await store.close()


async def test_a_cooldown_spaces_a_members_dreams(tmp_path):
    store = await QuotaStore.open(tmp_path / "q.sqlite3")
    rules = QuotaRules(cooldown=60)
    try:
        await store.reserve(1, 7, rules, now=T0)
        with pytest.raises(QuotaExceeded, match="60 s apart") as refused:
            await store.reserve(1, 7, rules, now=T0 + 59)
        assert refused.value.until == T0 + 60
        assert (refused.value.kind, refused.value.limit) == ("cooldown", 60)
        assert str(refused.value) == (
            "Not so fast: dreams here are 60 s apart; your next one can start "
            f"<t:{int(T0) + 61}:R>."
        )
        await store.reserve(1, 7, rules, now=T0 + 60)
        await store.reserve(1, 7, QuotaRules(), now=T0 + 61)  # no rules: nothing refused
    finally:
        await store.close()


async def test_a_check_counts_nothing_and_a_release_gives_the_place_back(tmp_path):
    store = await QuotaStore.open(tmp_path / "q.sqlite3")
    rules = QuotaRules(daily_limit=1)
    try:
        assert await store.reserve(1, 7, rules, record=False, now=T0) is None
        place = await store.reserve(1, 7, rules, now=T0)
        with pytest.raises(QuotaExceeded):
            await store.reserve(1, 7, rules, record=False, now=T0 + 1)
        await store.release(place)  # the dream was refused after all: it does not count
        await store.reserve(1, 7, rules, now=T0 + 2)
    finally:
        await store.close()


async def test_the_count_survives_a_restart_and_two_at_once_are_one(tmp_path):
    path = tmp_path / "q.sqlite3"
    store = await QuotaStore.open(path)
    rules = QuotaRules(daily_limit=1)
    outcomes = await asyncio.gather(
        store.reserve(None, 7, rules, now=T0), store.reserve(None, 7, rules, now=T0),
        return_exceptions=True,
    )  # fmt: skip
    assert sum(isinstance(outcome, QuotaExceeded) for outcome in outcomes) == 1
    await store.close()
    again = await QuotaStore.open(path)
    try:
        with pytest.raises(QuotaExceeded):
            await again.reserve(None, 7, rules, now=T0 + 10)
    finally:
        await again.close()
