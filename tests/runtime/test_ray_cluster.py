"""`RayExecutor` on a real Ray started here on 127.0.0.1 (never a mock of Ray).

One local Ray serves the module (`ray.init`, 4 logical CPUs: Ray's accounting,
not the machine's cores) and one executor with two CPU workers (InceptionV3,
random weights, tiny images) serves the executor tests; the bot tests build
their own executor through `bot.build_executor`, as `python bot.py` does.
Skipped, with the reason, where Ray is not installed (`pip install '.[ray]'`).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install '.[ray]'")

from bot import Settings, create_bot  # noqa: E402
from dream_engine.core.params import DreamParams  # noqa: E402
from dream_engine.core.results import Progress  # noqa: E402
from dream_engine.errors import DreamCancelled, ParamError  # noqa: E402
from dream_engine.runtime.executor import (  # noqa: E402
    DreamRequest,
    DreamTimedOut,
    EngineConfig,
    ExecutorUnavailable,
    WorkerCrashed,
)
from dream_engine.runtime.ray_cluster import RayExecutor  # noqa: E402
from dream_engine.runtime.ray_supervisor import SupervisedRayExecutor  # noqa: E402
from dream_engine.study.sweeps import Variant  # noqa: E402
from tests.bot.test_dream import png, settings_for  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.fakediscord import MANAGE_GUILD, FakeDiscord  # noqa: E402

FAST = DreamParams(layers={"mixed3": 1.0}, octaves=2, iterations=10, max_loss=1e6)
LONG = FAST.replace(octaves=2, iterations=1000)  # far longer than any test waits
SIDE = 160  # two octaves at this size (InceptionV3 needs 75 px)
WAIT = 90.0  # a generous ceiling on one call, so a bug fails instead of hanging

module_loop = pytest.mark.asyncio(loop_scope="module")
pytestmark = [pytest.mark.ray, pytest.mark.slow]


def noise(width: int = 160, height: int = 120) -> Image.Image:
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def request(params: DreamParams = FAST, **fields) -> DreamRequest:
    return DreamRequest(noise(), params, SIDE, **fields)


async def eventually(check: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A real local Ray for the module (the object store kept small, as the machine is);
    its address, which the bot's driver process joins as `RAY_ADDRESS`."""
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        object_store_memory=100 * 1024 * 1024,
        logging_level="ERROR",
        log_to_driver=False,
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def ray_settings(tmp_path, address: str) -> Settings:
    return settings_for(
        tmp_path, executor="ray", ray_address=address, workers=1, worker_cpus=1, ray_poll=0.5
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def executor(cluster) -> AsyncIterator[RayExecutor]:
    shared = RayExecutor(
        EngineConfig("inceptionv3", "random"), max_workers=2, worker_cpus=1, poll_seconds=0.5
    )
    await asyncio.wait_for(shared.start(), WAIT)
    yield shared
    await shared.close()


def in_hand(executor: RayExecutor):
    """The actor of the (one) worker that has a job in hand."""
    return next(slot.actor for slot in executor._slots if slot.job is not None)


@module_loop
async def test_two_jobs_run_at_the_same_time_on_two_workers(executor):
    assert executor.capacity == 2
    seen: list[list[float]] = [[], []]

    def timer(index: int) -> Callable[[Progress], None]:
        return lambda progress: seen[index].append(time.monotonic())

    done_before = sum(worker.jobs_done for worker in executor.workers())
    both = asyncio.gather(
        *(
            executor.submit(request(FAST.replace(iterations=30)), timer(i), threading.Event())
            for i in range(2)
        )
    )
    # Both in hand at once, one per worker.
    await eventually(lambda: all(worker.job for worker in executor.workers()))
    results = await asyncio.wait_for(both, WAIT)
    assert [result.image.size for result in results] == [(160, 120), (160, 120)]
    assert all(len(result.octaves) == 2 for result in results)
    assert all(seen)  # progress came back from both
    workers = executor.workers()
    assert [worker.jobs_done >= 1 for worker in workers] == [True, True]
    assert sum(worker.jobs_done for worker in workers) == done_before + 2
    assert all(worker.state == "ready" and worker.job is None for worker in workers)
    assert all("CPU" in worker.device and "node" in worker.host for worker in workers)


@module_loop
async def test_progress_arrives_in_order_with_variants(executor):
    events: list[Progress] = []
    variants = (Variant("step=0.01", FAST.replace(step=0.01)), Variant("step=0.05", FAST))
    result = await asyncio.wait_for(
        executor.submit(request(variants=variants), events.append, threading.Event()), WAIT
    )
    assert [caption for caption, _ in result.panels] == ["step=0.01", "step=0.05"]
    order = [(event.variant, event.octave, event.step) for event in events]
    assert order == sorted(order) and len(order) >= 4
    assert {event.variants for event in events} == {2}
    assert {event.variant for event in events} == {1, 2}
    last = events[-1]
    assert (last.variant, last.octave, last.step, last.octave_done) == (2, 2, 10, True)


@module_loop
async def test_a_guide_reaches_the_remote_engine(executor):
    """A guide needs weighted layers: the refusal can only come from the engine on the
    worker, so the guide crossed both hops (the wire's own test checks its pixels)."""
    channels_only = FAST.replace(layers={}, channels={"mixed3:5": 1.0})
    with pytest.raises(ParamError, match="guide: a guide is matched at the weighted layers"):
        await asyncio.wait_for(
            executor.submit(
                request(channels_only, guide=noise(90, 60)), lambda _: None, threading.Event()
            ),
            WAIT,
        )


@module_loop
async def test_a_zoom_runs_on_a_remote_worker_and_its_frames_come_back(executor):
    from dream_engine.motion.spec import MotionSpec

    events: list[Progress] = []
    zoom = request(FAST.replace(octaves=1), motion=MotionSpec("zoom", frames=3))
    result = await asyncio.wait_for(executor.submit(zoom, events.append, threading.Event()), WAIT)
    assert len(result.frames) == result.planned_frames == 3 and result.fps == 12.0
    finished = [event.finished_frame for event in events if event.finished_frame is not None]
    assert len(finished) == 3 and finished[-1].size == result.frames[-1].size


@module_loop
async def test_cancel_reaches_a_running_remote_job(executor):
    cancel = threading.Event()
    steps: list[int] = []

    def on_progress(progress: Progress) -> None:
        steps.append(progress.step)
        cancel.set()  # as soon as it is running remotely

    started = time.monotonic()
    with pytest.raises(DreamCancelled):
        await asyncio.wait_for(executor.submit(request(LONG), on_progress, cancel), WAIT)
    assert steps and time.monotonic() - started < 30  # 2000 steps would take minutes
    await eventually(lambda: all(worker.job is None for worker in executor.workers()))
    # The worker takes the next job, and an old cancel does not leak into it.
    result = await asyncio.wait_for(
        executor.submit(request(), lambda p: None, threading.Event()), WAIT
    )
    assert result.image.size == (160, 120)


@module_loop
async def test_a_killed_worker_costs_a_retry_and_comes_back(executor):
    restarts = executor.restarts
    killed: list[bool] = []

    def kill_once(progress: Progress) -> None:
        if not killed:
            killed.append(True)
            ray.kill(in_hand(executor), no_restart=False)  # Ray restarts it

    result = await asyncio.wait_for(executor.submit(request(), kill_once, threading.Event()), WAIT)
    assert killed and result.image.size == (160, 120)  # delivered on the other worker
    assert executor.restarts == restarts + 1
    await eventually(lambda: executor.capacity == 2)  # the killed one is back, engine built
    results = await asyncio.wait_for(
        asyncio.gather(
            *(executor.submit(request(), lambda p: None, threading.Event()) for _ in range(2))
        ),
        WAIT,
    )
    assert len(results) == 2


@module_loop
async def test_a_job_that_kills_two_workers_is_not_tried_a_third_time(executor):
    restarts = executor.restarts

    def kill(progress: Progress) -> None:
        with_job = [slot for slot in executor._slots if slot.job is not None]
        if with_job and with_job[0].state == "ready":
            ray.kill(with_job[0].actor, no_restart=False)

    with pytest.raises(WorkerCrashed, match="crashed the dream engine twice"):
        await asyncio.wait_for(executor.submit(request(LONG), kill, threading.Event()), WAIT)
    assert executor.restarts == restarts + 2
    await eventually(lambda: executor.capacity == 2)


@module_loop
async def test_a_job_over_the_time_limit_is_stopped_and_its_worker_restarted(executor):
    restarts = executor.restarts
    executor.job_timeout = 3.0
    try:
        started = time.monotonic()
        with pytest.raises(DreamTimedOut, match="longer than the 3-second limit"):
            await asyncio.wait_for(
                executor.submit(request(LONG), lambda p: None, threading.Event()), WAIT
            )
        assert time.monotonic() - started < 30
    finally:
        executor.job_timeout = None
    assert executor.restarts == restarts + 1
    await eventually(lambda: executor.capacity == 2)  # restarted, engine built again
    result = await asyncio.wait_for(
        executor.submit(request(), lambda p: None, threading.Event()), WAIT
    )
    assert result.image.size == (160, 120)


@module_loop
async def test_workers_are_recycled_after_so_many_jobs(executor):
    pids = {slot.name: slot.where["pid"] for slot in executor._slots}
    executor.recycle_after = 1
    try:
        await asyncio.wait_for(executor.submit(request(), lambda p: None, threading.Event()), WAIT)
    finally:
        executor.recycle_after = None
    recycled = [slot for slot in executor._slots if slot.state != "ready"]
    assert len(recycled) == 1  # the one that dreamed, at once
    await eventually(lambda: executor.capacity == 2)
    assert recycled[0].where["pid"] != pids[recycled[0].name]  # a fresh process
    result = await asyncio.wait_for(
        executor.submit(request(), lambda p: None, threading.Event()), WAIT
    )
    assert result.image.size == (160, 120)


@module_loop
async def test_a_worker_killed_while_idle_is_restarted_and_used(executor):
    idle = executor._slots[0].actor
    ray.kill(idle, no_restart=False)  # no job in hand: the next one finds it restarted
    await asyncio.sleep(1.0)
    results = await asyncio.wait_for(
        asyncio.gather(
            *(executor.submit(request(), lambda p: None, threading.Event()) for _ in range(2))
        ),
        WAIT,
    )
    assert [result.image.size for result in results] == [(160, 120), (160, 120)]
    await eventually(lambda: executor.capacity == 2)


@module_loop
async def test_the_pool_shrinks_and_grows_with_its_cap(executor):
    changes: list[int] = []
    executor.on_capacity_change = lambda: changes.append(executor.capacity)
    try:
        executor.max_workers = 1
        await eventually(lambda: executor.capacity == 1)  # the watcher retires one
        assert len(executor.workers()) == 1
        executor.max_workers = 2
        await eventually(lambda: executor.capacity == 2)  # and starts a new one
        assert changes == [1, 2]
        names = {worker.name for worker in executor.workers()}
        assert "dream-worker-3" in names or "dream-worker-4" in names
    finally:
        executor.on_capacity_change = None
        executor.max_workers = 2


@module_loop
async def test_a_cluster_without_room_for_a_worker_says_why(cluster):
    roomy = RayExecutor(EngineConfig("inceptionv3", "random"), worker_cpus=64)
    with pytest.raises(ExecutorUnavailable, match="each needs 1 GPU or DREAM_WORKER_CPUS=64 CPUs"):
        await roomy.start()
    await roomy.close()


# -- the bot, with DREAM_EXECUTOR=ray -----------------------------------------------------------


def test_settings_read_the_ray_variables():
    settings = Settings.from_env(
        {
            "DISCORD_TOKEN": "a",
            "DREAM_EXECUTOR": "ray",
            "RAY_ADDRESS": "ray://head:10001",
            "DREAM_WORKERS": "3",
            "DREAM_WORKER_CPUS": "2",
        }
    )
    assert (settings.executor, settings.ray_address, settings.workers) == (
        "ray",
        "ray://head:10001",
        3,
    )
    assert settings.worker_cpus == 2
    assert Settings.from_env({"DISCORD_TOKEN": "a", "DREAM_EXECUTOR": "local"}).executor == (
        "process"
    )
    assert Settings.from_env({"DISCORD_TOKEN": "a"}).workers is None


@pytest.mark.e2e
@pytest.mark.asyncio(loop_scope="function")
async def test_dream_through_discord_on_ray_and_a_new_worker_is_used(tmp_path, cluster, cat_photo):
    settings = ray_settings(tmp_path, cluster)
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        ada = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
        bob = fake.add_member(guild, "bob")
        bot = create_bot(settings)
        assert isinstance(bot.executor, SupervisedRayExecutor)  # Ray in its driver process
        await asyncio.wait_for(bot.start_executor(), WAIT)
        await fake.start_bot(bot)
        assert bot.executor.capacity == 1 and bot.dreams.workers == 1

        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        inter = await fake.slash(
            guild, bob, "dream", {"image": image, "preset": "one-octave", "iterations": 3}
        )
        result = await inter.wait_original(lambda m: bool(m.embeds and m.files), timeout=WAIT)
        seen = [version.get("content") or "" for version in result.history]
        assert any("Dreaming" in text for text in seen)
        assert "one-octave" in result.embeds[0]["title"]

        status = await fake.slash(guild, ada, "dreamadmin status")
        text = (await status.wait_callback()).data["content"]
        assert "(ray): 1 ready of 1" in text and "dream-worker-1" in text and "1 done" in text

        # A worker more, while the bot runs: the cog follows with a second worker task.
        bot.executor.max_workers = 2
        await eventually(lambda: bot.executor.capacity == 2 and bot.dreams.workers == 2)
        eve = fake.add_member(guild, "eve")
        inters = [
            await fake.slash(guild, who, "dream", {"image": image, "preset": "iter-high"})
            for who in (bob, eve)
        ]
        # Both start: one job per worker, two workers.
        await eventually(lambda: all(worker.job for worker in bot.executor.workers()))
        status = await fake.slash(guild, ada, "dreamadmin status")
        text = (await status.wait_callback()).data["content"]
        assert text.count("dreaming job") == 2, text
        for each in inters:  # Cancel both; the button reaches the remote engine.
            button = next(b for b in each.original.buttons if b["label"] == "Cancel")
            owner = bob if each is inters[0] else eve
            click = await fake.click(guild, owner, each.original, button["custom_id"])
            await click.wait_callback()
        for each in inters:
            await each.wait_original(lambda m: "Cancelled" in (m.content or ""), timeout=WAIT)
        await bot.close()


def test_an_unreachable_cluster_is_one_line_and_exit_2(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DISCORD_TOKEN": "fake-token",
        "DREAM_EXECUTOR": "ray",
        "RAY_ADDRESS": "127.0.0.1:1",
        "DREAM_RAY_CONNECT_TIMEOUT": "3",
        "DREAM_DB": str(tmp_path / "bot.sqlite3"),
    }
    result = subprocess.run(
        [sys.executable, str(REPO / "bot.py")], cwd=tmp_path, capture_output=True, text=True,
        env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: could not reach the Ray cluster at 127.0.0.1:1 within 3 s "
        "(check RAY_ADDRESS, that `ray start --head` runs there, and RAY_AUTH_TOKEN if the "
        "cluster uses token authentication)."
    )


@pytest.mark.e2e
@pytest.mark.asyncio(loop_scope="function")
async def test_with_no_worker_left_waiting_members_are_told_and_served_when_one_is_back(
    tmp_path, cluster, cat_photo
):
    """What a lost cluster looks like to the bot: the pool drops to none, jobs stay in line."""
    settings = ray_settings(tmp_path, cluster)
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob, carol = fake.add_member(guild, "bob"), fake.add_member(guild, "carol")
        bot = create_bot(settings)
        await asyncio.wait_for(bot.start_executor(), WAIT)
        await fake.start_bot(bot)
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        # Bob's dream runs for seconds: still in hand when the pool empties, and finished on
        # its leaving worker before carol's turn (the full 200 iterations would take ~20 s).
        running = await fake.slash(
            guild, bob, "dream", {"image": image, "preset": "iter-high", "iterations": 50}
        )
        await running.wait_original(lambda m: "Dreaming" in (m.content or ""), timeout=WAIT)
        waiting = await fake.slash(
            guild, carol, "dream", {"image": image, "preset": "one-octave", "iterations": 2}
        )
        await waiting.wait_original(lambda m: "next in line" in (m.content or ""), timeout=WAIT)

        bot.executor.max_workers = 0  # the pool empties, as when the cluster goes away
        told = await waiting.wait_original(
            lambda m: "can't be reached" in (m.content or ""), timeout=WAIT
        )
        assert "next in line" in told.content and told.buttons  # still queued, still cancellable
        assert [job.user_id for job in bot.queue.waiting()] == [carol.id]

        bot.executor.max_workers = 1  # back
        await waiting.wait_original(lambda m: bool(m.embeds and m.files), timeout=WAIT)
        await bot.close()
