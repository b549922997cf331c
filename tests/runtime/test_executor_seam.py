"""The executor seam without Ray: the default run never imports it, and every executor
describes its workers for `/dreamadmin status`."""

from __future__ import annotations

import re
import subprocess
import sys
from types import SimpleNamespace

from bot import Settings
from cogs.admin import workers_text
from dream_engine.runtime.executor import EngineConfig
from dream_engine.runtime.local import LocalExecutor
from dream_engine.runtime.process import ProcessExecutor
from dream_engine.service.queue import GuildLimits, JobQueue
from tests.conftest import REPO


def test_only_the_ray_modules_import_ray():
    """`ray` is an optional extra: only runtime's Ray modules (`ray_*.py`) may import it."""
    sources = [
        REPO / "bot.py",
        *(REPO / "dream_engine").rglob("*.py"),
        *(REPO / "cogs").rglob("*.py"),
    ]
    importing = [
        path.relative_to(REPO).as_posix()
        for path in sources
        if re.search(r"^\s*(import ray|from ray)\b", path.read_text(), re.M)
    ]
    assert "dream_engine/runtime/ray_cluster.py" in importing
    assert all(re.fullmatch(r"dream_engine/runtime/ray_\w+\.py", path) for path in importing), (
        importing
    )


def test_the_default_bot_does_not_load_ray():
    code = (
        "import sys; from bot import Settings, build_executor; "
        "executor = build_executor(Settings(token='x', weights='random')); "
        "print(type(executor).__name__, 'ray' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.split() == ["ProcessExecutor", "False"], result.stderr


def test_local_executors_report_their_one_worker():
    config = EngineConfig("inceptionv3", "random")
    bot = SimpleNamespace(
        executor=LocalExecutor(config), queue=JobQueue(10), settings=Settings(token="x")
    )
    text = workers_text(bot, guild_id=1)
    assert "(process): 1 ready of 1; 0 waiting, 0 running." in text
    assert "`engine thread` starting on" in text and "0 done, idle" in text

    bot.executor = ProcessExecutor(config)
    job = bot.queue.submit(
        guild_id=2, user_id=7, channel_id=3, payload=None, limits=GuildLimits(5, 2)
    )
    bot.queue.take_nowait()
    bot.executor._in_hand = job.id  # as while it dreams
    assert "dreaming (another server's job)" in workers_text(bot, guild_id=1)
    assert f"dreaming job `{job.id}` for <@7>" in workers_text(bot, guild_id=2)
    assert "`worker process` starting on" in workers_text(bot, guild_id=2)


def test_the_ray_bot_loads_ray_only_in_its_driver_process():
    code = (
        "import sys; from bot import Settings, build_executor; "
        "executor = build_executor(Settings(token='x', weights='random', executor='ray')); "
        "print(type(executor).__name__, 'ray' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.split() == ["SupervisedRayExecutor", "False"], result.stderr


def test_a_ray_executor_without_its_cluster_says_so_in_status():
    from dream_engine.runtime.ray_supervisor import SupervisedRayExecutor

    executor = SupervisedRayExecutor(
        EngineConfig("inceptionv3", "random"), address="ray://head:10001"
    )
    bot = SimpleNamespace(
        executor=executor, queue=JobQueue(10), settings=Settings(token="x", executor="ray")
    )
    text = workers_text(bot, guild_id=1)
    assert "(ray): 0 ready of 1; 0 waiting, 0 running." in text
    assert "`Ray cluster` unreachable on ray://head:10001" in text
