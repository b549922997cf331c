"""The job store: what a restart finds, and what a crash costs a job."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_asyncio

from dream_engine.core.params import DreamParams
from dream_engine.service.job_store import MAX_INTERRUPTIONS, JobRecord, JobStore
from dream_engine.service.queue import JobState
from dream_engine.study.sweeps import Variant

pytestmark = pytest.mark.asyncio(loop_scope="function")


def record(job_id: str, **changes) -> JobRecord:
    base = JobRecord(
        id=job_id, guild_id=1, channel_id=2, user_id=3, user_name="bob", application_id=4,
        token=f"token-{job_id}", token_expires_at=time.time() + 900, upload_limit=8 << 20,
        preset="balanced", params=DreamParams(layers={"mixed3": 0.5, "mixed5": 1.0}, step=0.02),
        changed={"step": 0.02}, gallery=True, source_id=9, max_side=512,
    )  # fmt: skip
    return replace(base, **changes)


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[JobStore]:
    opened = await JobStore.open(tmp_path / "jobs.sqlite3")
    yield opened
    await opened.close()


async def test_a_saved_job_comes_back_whole_with_its_upload(store):
    saved = record("a1")
    await store.add(saved, b"\x89PNG fake bytes")
    assert await store.get("a1") == saved
    assert await store.image("a1") == b"\x89PNG fake bytes"


async def test_a_user_installed_guided_job_keeps_where_it_may_answer_and_its_guide(store):
    """Reroll finds the guide again; an interaction-only job never falls back to a channel
    the bot cannot reach, also after a restart."""
    saved = record("u1", interaction_only=True, guide_name="eye.png", guide_source_id=12)
    await store.add(saved, b"img", b"guide")
    assert await store.get("u1") == saved
    assert saved.queue_guild is None and record("g1").queue_guild == 1
    (resumed,) = (await store.resume()).jobs
    assert resumed.interaction_only and resumed.guide_source_id == 12


async def test_a_jobs_locale_survives_the_store_and_a_restart(tmp_path):
    """What a job shows along the way is in its member's language, even once resumed."""
    path = tmp_path / "locales.sqlite3"
    first = await JobStore.open(path)
    await first.add(record("de1", locale="de"), b"img")
    await first.add(record("en1"), b"img")
    assert (await first.get("de1")).locale == "de"
    await first.close()
    again = await JobStore.open(path)  # the restart
    try:
        assert [job.locale for job in (await again.resume()).jobs] == ["de", "en-US"]
    finally:
        await again.close()
    with sqlite3.connect(path) as db:  # jobs saved before V12 read in English
        (default,) = db.execute(
            "SELECT dflt_value FROM pragma_table_info('jobs') WHERE name = 'locale'"
        ).fetchone()
    assert default == "'en-US'"


async def test_a_comparison_with_an_animation_flag_comes_back_whole(store):
    base = record("c1").params
    variants = tuple(Variant(f"step={step:g}", base.replace(step=step)) for step in (0.005, 0.05))
    saved = record("c1", variants=variants, title="balanced", animate=True, spoiler=True)
    await store.add(saved, b"img")
    assert await store.get("c1") == saved
    (resumed,) = (await store.resume()).jobs
    assert resumed.variants == variants and resumed.animate


async def test_a_guided_job_comes_back_with_its_guide_after_a_restart(tmp_path):
    path = tmp_path / "guided.sqlite3"
    first = await JobStore.open(path)
    saved = record("g1", guide_name="cup.png")
    await first.add(saved, b"img", guide=b"guide bytes")
    await first.add(record("plain"), b"img")
    await first.close()
    again = await JobStore.open(path)  # the restart
    try:
        assert [job.guide_name for job in (await again.resume()).jobs] == ["cup.png", None]
        assert await again.guide("g1") == b"guide bytes"
        assert await again.guide("plain") is None
        await again.finish("g1", JobState.DONE)
        assert await again.guide("g1") is None  # dropped with the upload
    finally:
        await again.close()


async def test_a_moving_job_keeps_its_spec_and_finished_frames_until_it_ends(tmp_path):
    from dream_engine.motion.spec import MotionSpec

    path = tmp_path / "moving.sqlite3"
    first = await JobStore.open(path)
    spec = MotionSpec("zoom", frames=6, zoom=1.1, format="gif")
    await first.add(record("z1", motion=spec), b"img")
    for number in (1, 2, 4):  # frame 3 was not saved: only 1 and 2 can be built on
        await first.add_frame("z1", number, f"frame {number}".encode())
    await first.close()
    again = await JobStore.open(path)  # the restart
    try:
        (resumed,) = (await again.resume()).jobs
        assert resumed.motion == spec
        assert await again.frames("z1") == [b"frame 1", b"frame 2"]
        await again.finish("z1", JobState.DONE)
        assert await again.frames("z1") == []
    finally:
        await again.close()


async def test_resume_returns_unfinished_jobs_in_accept_order(store):
    for job_id in ("c", "a", "b", "done"):
        await store.add(record(job_id), b"img")
    await store.finish("done", JobState.DONE)
    await store.mark_running("a")
    resumed = await store.resume()
    assert [job.id for job in resumed.jobs] == ["c", "a", "b"]  # accept order, not id order
    assert all(job.state is JobState.QUEUED for job in resumed.jobs)
    assert not resumed.given_up


async def test_a_job_caught_running_counts_an_interruption_and_is_given_up_at_the_limit(store):
    await store.add(record("x"), b"img")
    for interruption in range(1, MAX_INTERRUPTIONS):
        await store.mark_running("x")
        resumed = await store.resume()
        assert [(job.id, job.interruptions) for job in resumed.jobs] == [("x", interruption)]
    await store.mark_running("x")
    resumed = await store.resume()
    assert not resumed.jobs
    (given_up, why), *_ = resumed.given_up
    assert given_up.id == "x" and "not tried again" in why
    assert (await store.get("x")).state is JobState.FAILED
    assert (await store.resume()).given_up == []  # told once, not at every start


async def test_a_graceful_pause_is_not_an_interruption(store):
    await store.add(record("p"), b"img")
    for _ in range(MAX_INTERRUPTIONS + 1):
        await store.mark_running("p")
        await store.requeue("p")
    (job,) = (await store.resume()).jobs
    assert job.interruptions == 0


async def test_finishing_drops_the_upload_and_the_token(store):
    await store.add(record("f"), b"img")
    await store.finish("f", JobState.UNDELIVERABLE, "channel deleted")
    finished = await store.get("f")
    assert finished.state is JobState.UNDELIVERABLE and finished.token is None
    assert await store.image("f") is None
    assert await store.note("f") == "channel deleted"
    with pytest.raises(ValueError):
        await store.finish("f", JobState.QUEUED)


async def test_a_row_that_no_longer_validates_is_failed_with_the_reason(tmp_path, store):
    await store.add(record("old"), b"img")
    await store.add(record("ok"), b"img")
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:  # an upgrade renamed a layer
        db.execute("""UPDATE jobs SET params = '{"layers": {"mixed99": 1}}' WHERE id = 'old'""")
    resumed = await store.resume()
    assert [job.id for job in resumed.jobs] == ["ok"]
    assert (await store.get("ok")).state is JobState.QUEUED
    assert "mixed99" in await store.note("old")
