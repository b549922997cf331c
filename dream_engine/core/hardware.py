"""What this machine computes fast, read once: the precision `auto` picks, and how many
threads TensorFlow should use.

`precision="auto"` (the default) picks bfloat16 where the device computes it
natively (x86 CPUs with AMX-BF16 or AVX512_BF16, NVIDIA GPUs of compute
capability 8.0 and later, TPUs), float16 where only float16 tensor cores exist
(compute capability 7.x), float32 elsewhere, and keeps the reduced precision only
for models where it was measured to pay: small depthwise convolutions
(MobileNetV2) gain nothing from bfloat16 and pay for the casts.

Threads: a container given two CPUs of a 64-core host must not start 64 threads
per pool, so the pools are sized from the CPUs this process may really use (its
affinity and its cgroup quota), unless `DREAM_THREADS` says otherwise.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

AUTO = "auto"
FLOAT32, BFLOAT16, FLOAT16 = "float32", "mixed_bfloat16", "mixed_float16"
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")

#: Speed of a reduced precision against float32, per model, measured on an Intel Xeon with
#: AMX_BF16 (2 CPUs, both precisions in one process taking turns): InceptionV3's
#: `balanced` step at 512x384, 0.156 s float32 against 0.070 s mixed_bfloat16
#: (2026-12-04); the dogs MobileNetV2 demo dream at 451x300, 2.65 s against 3.52 s
#: (2026-12-04); VGG19's preset at 512x384, 2.05 s against 0.51 s (2026-11). A model
#: below 1.0 stays at float32.
MEASURED_SPEEDUP: dict[str, float] = {
    "inceptionv3": 2.2,
    "vgg19": 4.0,
    "mobilenetv2": 0.75,
    "dogs": 0.75,
}


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision an engine runs at, and why (logged at start, shown by status)."""

    precision: str
    reason: str


@dataclass(frozen=True)
class Device:
    """The fastest device TensorFlow will place the model on, as far as precision goes."""

    name: str  # "CPU", "GPU 0 (NVIDIA H200, compute capability 9.0)", "TPU"
    native: str  # the reduced precision it computes natively, or float32 if none


def choose_precision(model: str, requested: str, device: Device | None = None) -> PrecisionChoice:
    """`requested` as given, or for `auto` the fastest precision this model gains from."""
    if requested != AUTO:
        return PrecisionChoice(requested, "asked for")
    device = device or detect_device()
    if device.native == FLOAT32:
        return PrecisionChoice(FLOAT32, f"{device.name} has no native bfloat16 or float16")
    speedup = MEASURED_SPEEDUP.get(model)
    if speedup is not None and speedup < 1.0:
        return PrecisionChoice(
            FLOAT32,
            f"{device.name} has {_short(device.native)}, but {model} measured "
            f"{speedup:.2f}x with it (small depthwise convolutions gain nothing)",
        )
    gain = f", measured {speedup:.2f}x for {model}" if speedup is not None else ""
    return PrecisionChoice(device.native, f"{device.name} computes {_short(device.native)}{gain}")


def detect_device() -> Device:
    """The accelerator TensorFlow sees first (TPU, GPU), else this CPU, with its native
    reduced precision. Imports TensorFlow only to look for accelerators."""
    import tensorflow as tf

    if tf.config.list_logical_devices("TPU"):
        return Device("TPU", BFLOAT16)
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        major, minor = details.get("compute_capability") or (0, 0)
        name = f"GPU 0 ({details.get('device_name', 'GPU')}, compute capability {major}.{minor})"
        native = BFLOAT16 if major >= 8 else FLOAT16 if major == 7 else FLOAT32
        return Device(name, native)
    flags = cpu_flags()
    found = [flag.upper() for flag in CPU_BF16_FLAGS if flag in flags]
    if found:
        return Device(f"this CPU ({', '.join(found)})", BFLOAT16)
    return Device("this CPU", FLOAT32)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (Linux); empty where they cannot be read."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def usable_cpus(
    cgroup: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")
) -> int:
    """CPUs this process may run on: its affinity, capped by the CPU quota of its cgroup
    (v2 `cpu.max`, or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota(cgroup, membership)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def _cgroup_quota(cgroup: Path, membership: Path) -> float | None:
    """The tightest CPU quota, in CPUs, over this process's cgroup and the ones above it
    (a parent's quota caps its children), or None where there is none to read."""
    quotas = [quota for folder in _own_cgroups(cgroup, membership) if (quota := _quota(folder))]
    return min(quotas, default=None)


def _own_cgroups(cgroup: Path, membership: Path) -> list[Path]:
    """This process's cgroup folders that may hold a CPU quota, its own first.

    `/proc/self/cgroup` names the cgroup ("0::/path" in v2, "N:cpu,cpuacct:/path" in
    v1). Inside a container the mount usually starts at the container's own cgroup, so
    where the named path is not under the mount, the mount's top is the process's."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        lines = ["0::/", "1:cpu:/"]
    folders: list[Path] = []
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        if controllers == "":
            tops = [cgroup]
        elif "cpu" in controllers.split(","):
            tops = [cgroup / "cpu", cgroup / controllers]
        else:
            continue
        for top in tops:
            own = top / path.strip("/")
            if not own.is_dir():
                folders.append(top)
                continue
            folders.append(own)
            while own != top:
                own = own.parent
                folders.append(own)
    return folders


def _quota(folder: Path) -> float | None:
    """The CPU quota set in one cgroup folder, in CPUs (v2 or v1 files), or None."""
    try:
        fields = (folder / "cpu.max").read_text().split()
        return int(fields[0]) / int(fields[1]) if fields and fields[0] != "max" else None
    except (OSError, ValueError, IndexError, ZeroDivisionError):
        pass
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


@dataclass(frozen=True)
class ThreadPlan:
    intra_op: int  # threads one op (a convolution) may use
    inter_op: int  # ops run side by side
    reason: str


def plan_threads(
    threads: int | None = None,
    cgroup: Path = Path("/sys/fs/cgroup"),
    membership: Path = Path("/proc/self/cgroup"),
) -> ThreadPlan:
    """TensorFlow's pools sized from the usable CPUs, or `threads` for one op when given
    (`DREAM_THREADS`, `--threads`; 0 or None: from the CPUs)."""
    if threads:
        return ThreadPlan(threads, _inter_op(threads), "set by DREAM_THREADS / --threads")
    cpus = usable_cpus(cgroup, membership)
    return ThreadPlan(cpus, _inter_op(cpus), f"{cpus} usable CPU(s) (affinity and cgroup quota)")


def _inter_op(threads: int) -> int:
    """Two ops at once wherever there are two CPUs: an Inception block's branches are
    independent convolutions, too small at dream sizes to fill the cores one at a time.
    Measured on a 2-CPU Xeon (InceptionV3, `balanced`, a step at 256x256 / 512x384 /
    1024x768): mixed_bfloat16 0.051 / 0.090 / 0.265 s with one op at a time, 0.033 /
    0.071 / 0.236 s with two; float32 0.065 / 0.167 / 0.605 against 0.062 / 0.156 /
    0.580. Each op still gets every CPU (one thread per op instead was faster for
    bfloat16 at 256x256, 0.027 s, but slower at 1024x768, 0.304 s, and for float32)."""
    return 1 if threads <= 1 else 2


def apply_threads(plan: ThreadPlan) -> bool:
    """Size TensorFlow's pools; False if TensorFlow had already started them (too late:
    another engine in this process came first, and its pools are kept)."""
    import tensorflow as tf

    threading = tf.config.threading
    current = (
        threading.get_intra_op_parallelism_threads(),
        threading.get_inter_op_parallelism_threads(),
    )
    if current == (plan.intra_op, plan.inter_op):
        return True
    try:
        threading.set_intra_op_parallelism_threads(plan.intra_op)
        threading.set_inter_op_parallelism_threads(plan.inter_op)
    except RuntimeError:  # the runtime is initialised: the pools keep their size
        log.debug("TensorFlow's thread pools already run; %s not applied", plan)
        return False
    log.info("TensorFlow threads: %d per op, %d ops at once (%s)",
             plan.intra_op, plan.inter_op, plan.reason)  # fmt: skip
    return True


def _short(precision: str) -> str:
    return precision.removeprefix("mixed_")
