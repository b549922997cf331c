"""`precision=auto` and the thread pools: what the machine is read as, and what follows.

The rules are checked on described devices (a CPU with and without bfloat16, GPUs of
each generation, a TPU) and on this machine as it really is; the CPU quota on cgroup
files written here, v2 and v1.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dream_engine.core.hardware import (
    BFLOAT16,
    FLOAT16,
    FLOAT32,
    MEASURED_SPEEDUP,
    Device,
    choose_precision,
    cpu_flags,
    detect_device,
    plan_threads,
    usable_cpus,
)
from tests.conftest import REPO

AMX_CPU = Device("this CPU (AMX_BF16)", BFLOAT16)
OLD_CPU = Device("this CPU", FLOAT32)
AMPERE = Device("GPU 0 (A100, compute capability 8.0)", BFLOAT16)
TURING = Device("GPU 0 (T4, compute capability 7.5)", FLOAT16)


@pytest.mark.parametrize(
    ("model", "device", "expected"),
    [
        ("inceptionv3", AMX_CPU, BFLOAT16),
        ("vgg19", AMPERE, BFLOAT16),
        ("inceptionv3", TURING, FLOAT16),
        ("inceptionv3", OLD_CPU, FLOAT32),
        ("dogs", AMX_CPU, FLOAT32),  # depthwise convolutions: bfloat16 measured slower
        ("mobilenetv2", AMPERE, FLOAT32),
    ],
)
def test_auto_takes_the_native_precision_only_where_the_model_gains(model, device, expected):
    choice = choose_precision(model, "auto", device)
    assert choice.precision == expected
    assert device.name in choice.reason  # the reason names what it saw


def test_auto_says_why_it_kept_float32():
    assert f"{MEASURED_SPEEDUP['dogs']:.2f}x" in choose_precision("dogs", "auto", AMX_CPU).reason
    assert "no native" in choose_precision("inceptionv3", "auto", OLD_CPU).reason


def test_an_explicit_precision_is_kept_whatever_the_device():
    for precision in (FLOAT32, BFLOAT16, FLOAT16):
        choice = choose_precision("dogs", precision, AMX_CPU)
        assert (choice.precision, choice.reason) == (precision, "asked for")


def test_this_machine_is_read_from_its_cpu_flags():
    flags = cpu_flags()
    device = detect_device()  # no GPU or TPU on the machines that run this suite
    has_bf16 = bool({"amx_bf16", "avx512_bf16"} & flags)
    assert device.native == (BFLOAT16 if has_bf16 else FLOAT32)


def test_cpu_flags_come_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx512_bf16 amx_bf16\n")
    assert {"avx512_bf16", "amx_bf16", "fpu"} <= cpu_flags(cpuinfo)
    assert cpu_flags(tmp_path / "missing") == set()


def affinity() -> int:
    return len(os.sched_getaffinity(0))


def test_a_cgroup_v2_quota_caps_the_threads(tmp_path):
    (tmp_path / "cpu.max").write_text("100000 100000\n")  # one CPU's worth
    assert usable_cpus(tmp_path) == 1
    assert plan_threads(cgroup=tmp_path).intra_op == 1
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs: two threads
    assert usable_cpus(tmp_path) == min(2, affinity())
    (tmp_path / "cpu.max").write_text("max 100000\n")  # no quota: the affinity
    assert usable_cpus(tmp_path) == affinity()


def test_a_cgroup_v1_quota_caps_the_threads(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cpus(tmp_path) == 1
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # unlimited
    assert usable_cpus(tmp_path) == affinity()


def test_the_quota_is_read_from_this_processs_own_cgroup_and_those_above_it(tmp_path):
    """A process in a child cgroup (no cgroup namespace) has its quota there, not at the
    mount's top; a parent's tighter quota caps it too."""
    membership = tmp_path / "self-cgroup"
    membership.write_text("4:memory:/elsewhere\n1:cpu,cpuacct:/bots/dreamer\n0::/\n")
    top = tmp_path / "cpu,cpuacct"
    own = top / "bots" / "dreamer"
    own.mkdir(parents=True)
    (own / "cpu.cfs_quota_us").write_text("100000\n")  # one CPU, in the child only
    (own / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cpus(tmp_path, membership) == 1
    assert plan_threads(cgroup=tmp_path, membership=membership).intra_op == 1
    (own / "cpu.cfs_quota_us").write_text("-1\n")
    assert usable_cpus(tmp_path, membership) == affinity()
    (top / "bots" / "cpu.cfs_quota_us").write_text("50000\n")  # the parent's half a CPU
    (top / "bots" / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cpus(tmp_path, membership) == 1


def test_a_container_whose_mount_starts_at_its_own_cgroup_reads_the_top(tmp_path):
    membership = tmp_path / "self-cgroup"
    membership.write_text("0::/docker/0123abcd\n")  # the path is the host's view
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert usable_cpus(tmp_path, membership) == 1


def test_a_thread_setting_wins_over_the_cpus(tmp_path):
    plan = plan_threads(6, cgroup=tmp_path)
    assert (plan.intra_op, plan.inter_op) == (6, 2)
    assert plan_threads(0, cgroup=tmp_path).intra_op == affinity()


@pytest.mark.slow
def test_an_engine_sizes_tensorflows_pools_from_a_cpu_affinity_of_one():
    """Run in a fresh process pinned to one CPU, so TensorFlow's pools are not started yet."""
    script = (
        "import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]});"
        "import tensorflow as tf;"
        "from dream_engine.core.engine import DreamEngine;"
        "engine = DreamEngine('dogs', weights='random', precision='auto');"
        "t = tf.config.threading;"
        "print(t.get_intra_op_parallelism_threads(), t.get_inter_op_parallelism_threads(),"
        " engine.precision)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    intra, inter, precision = done.stdout.split()
    assert (intra, inter) == ("1", "1")
    assert precision == FLOAT32  # the dogs model never gains from bfloat16


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.asyncio(loop_scope="function")
async def test_dreamadmin_status_shows_each_workers_precision_and_why(tmp_path):
    from bot import Settings, create_bot
    from dream_engine.runtime.executor import EngineConfig
    from dream_engine.runtime.local import LocalExecutor
    from tests.fakediscord import MANAGE_GUILD, FakeDiscord

    executor = LocalExecutor(EngineConfig("dogs", "random"))  # auto, as the bot defaults
    await executor.start()
    settings = Settings(
        token="fake-token", model="dogs", weights="random", db_path=str(tmp_path / "b.db")
    )
    try:
        async with FakeDiscord() as fake:
            guild = fake.add_guild("Art")
            ada = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
            await fake.start_bot(create_bot(settings, executor))
            status = await fake.slash(guild, ada, "dreamadmin status")
            text = (await status.wait_callback()).data["content"]
    finally:
        await executor.close()
    assert "engine thread" in text
    reason = choose_precision("dogs", "auto").reason
    assert f"float32 ({reason})" in text
