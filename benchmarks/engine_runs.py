"""Running one engine benchmark case: the machine's facts, each measurement, and the
child processes that give a big case a peak memory of its own.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.engine_plan import (
    CHILD_TIMEOUT_S,
    ENGINE_PRECISION,
    EXCEPTION_LINE,
    REPO,
    Case,
    Record,
    Skipped,
)

# --- The machine --------------------------------------------------------------------------------


def machine_info() -> Record:
    """What the numbers were measured on; no TensorFlow import, so the parent stays light."""
    cpuinfo = _read("/proc/cpuinfo")
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor() or platform.machine(),
    )
    flags_line = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    flags = set(flags_line.split(":", 1)[-1].split())
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
    return {
        "case": "machine",
        "impl": "host",
        "cpu_model": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "mem_total_gib": round(_meminfo_kib("MemTotal") / 2**20, 1),
        "cpu_flags": {flag: flag in flags for flag in wanted},
        "tensorflow": _package_version("tensorflow", "tensorflow-cpu"),
        "keras": _package_version("keras"),
        "python": platform.python_version(),
        "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _meminfo_kib(key: str) -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _package_version(*names: str) -> str | None:
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(name)
    return None


def memory_fields(isolated: bool) -> Record:
    """Peak memory of this process; `isolated` says whether that peak is one case's alone."""
    fields: Record = {
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "vm_hwm_mib": round(_status_kib("VmHWM") / 1024, 1),
        "rss_isolated": isolated,
    }
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        info = tf.config.experimental.get_memory_info("GPU:0")
        fields["gpu_peak_mib"] = round(info["peak"] / 2**20, 1)
    return fields


def _status_kib(key: str) -> int:
    for line in _read("/proc/self/status").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


# --- Measurements, run inside one process -------------------------------------------------------


def run_matmul_peak(case: Case) -> list[Record]:
    """The device's practical roof: the best of a few timed rounds of one big matmul per dtype."""
    import tensorflow as tf

    device = tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("CPU")
    records = []
    for dtype in ("float32", "bfloat16", "float16"):
        record = {**case.label(), "dtype": dtype, "n": case.matmul_n, "device": device[0].name}
        try:
            record["gflops"] = _sig(matmul_gflops(tf.dtypes.as_dtype(dtype), case.matmul_n))
        except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as error:
            record["skipped"] = f"{type(error).__name__}: {str(error)[:120]}"
        records.append(record)
    return records


def matmul_gflops(dtype: Any, n: int, rounds: int = 3, round_s: float = 0.5) -> float:
    """GFLOP/s of an n x n matmul: best round, each ~round_s, synced once at its end."""
    import tensorflow as tf

    a = tf.cast(tf.random.stateless_normal([n, n], seed=[0, 1]), dtype)
    b = tf.cast(tf.random.stateless_normal([n, n], seed=[0, 2]), dtype)
    product = tf.function(lambda a, b: tf.reduce_sum(tf.linalg.matmul(a, b)))
    product(a, b).numpy()  # trace and warm up
    one_s, _ = timed(lambda: product(a, b).numpy())
    repeats = max(2, int(round_s / max(one_s, 1e-6)))
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeats):
            last = product(a, b)
        last.numpy()
        best = min(best, (time.perf_counter() - started) / repeats)
    return 2 * n**3 / best / 1e9


def run_flops(case: Case) -> list[Record]:
    """FLOPs of one gradient step per size, counted on the reference's step graph.

    Both implementations do the same maths per step (the engine adds a roll and,
    when tiled, a little border work), so one count serves both.
    """
    from benchmarks.reference import ReferenceDreamer

    params = bench_params(case)
    dreamer = ReferenceDreamer(case.model, case.weights)
    dreamer.set_layers(params.layers)
    return [
        {**case.label(), "size": size, "gflop_per_step": _sig(step_flops(dreamer, size) / 1e9)}
        for size in case.sizes
    ]


def step_flops(dreamer: Any, size: str) -> int:
    """FLOPs of the reference's step at `size`, from the graph pruned to what the step returns.

    `tape.gradient` builds the filter gradients too; nothing uses them, so
    Grappler drops them at run time, and they must not be counted either.
    """
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder

    width, height = parse_size(size)
    concrete = dreamer.gradient_ascent_step.get_concrete_function(
        tf.TensorSpec([1, height, width, 3], tf.float32), 0.01
    )
    outputs = [tensor.op.name for tensor in concrete.outputs]
    pruned = tf.compat.v1.graph_util.extract_sub_graph(
        concrete.graph.as_graph_def(add_shapes=True), outputs
    )
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(pruned, name="")
    builder = option_builder.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    with _stdout_to_stderr():  # the profiler prints notes; stdout is for JSON lines only
        return model_analyzer.profile(graph, options=options).total_float_ops


def run_steady(case: Case) -> list[Record]:
    """Seconds per step of one octave, after a one-step warm-up at that size (traces, caches).

    With several implementations (`case.impls`) all live in this one process and take
    turns, round by round, the order rotating: on a shared machine the speed drifts
    by 10-15% over minutes, and a ratio of runs made minutes apart in separate
    processes measures that drift as much as the code. Each reports its best round
    (noise only ever adds time) and its median.
    """
    impls = case.impls or (case.impl,)
    built = {impl: timed(make_dreamer, case, impl) for impl in impls}
    params = bench_params(case).replace(octaves=1)
    records = []
    for size in case.sizes:
        image = noise_image(size)
        traces_before = {impl: dreamer.trace_count for impl, (_, dreamer) in built.items()}
        warmup_s = {
            impl: timed(dreamer.dream, image, params.replace(iterations=1))[0]
            for impl, (_, dreamer) in built.items()
        }
        per_step: dict[str, list[float]] = {impl: [] for impl in impls}
        steps = dict.fromkeys(impls, 0)
        for round_index in range(case.rounds):
            shift = round_index % len(impls)
            for impl in impls[shift:] + impls[:shift]:
                dreamer = built[impl][1]
                steps_before = dreamer.steps_taken
                seconds, _ = timed(dreamer.dream, image, params.replace(iterations=case.steps))
                steps[impl] = dreamer.steps_taken - steps_before
                per_step[impl].append(_sig(seconds / steps[impl]))
        for impl, (build_s, dreamer) in built.items():
            records.append(
                {
                    "case": case.case,
                    "impl": impl,
                    "size": size,
                    "s_per_step": min(per_step[impl]),
                    "median_s_per_step": _sig(statistics.median(per_step[impl])),
                    "rounds_s_per_step": per_step[impl],
                    "steps": steps[impl],
                    "warmup_s": _sig(warmup_s[impl]),
                    "build_s": _sig(build_s),
                    "new_traces": dreamer.trace_count - traces_before[impl],  # this size's
                    "traces": dreamer.trace_count,
                    **({"taking_turns_with": list(impls)} if len(impls) > 1 else {}),
                    **dreamer_options(dreamer),
                }
            )
    return records


def run_stream(case: Case) -> list[Record]:
    """A bot's view: a fresh instance dreams images of different sizes, tracing included;
    then second passes over the same sizes, where nothing needs tracing any more (the
    best of `case.rounds` passes, as for steady steps: noise only ever adds time)."""
    build_s, dreamer = timed(make_dreamer, case)
    params = bench_params(case).replace(iterations=case.steps)

    def one_pass() -> tuple[list[float], int, int]:
        traces_before, steps_before = dreamer.trace_count, dreamer.steps_taken
        seconds = [timed(dreamer.dream, noise_image(size), params)[0] for size in case.sizes]
        return seconds, dreamer.steps_taken - steps_before, dreamer.trace_count - traces_before

    first = one_pass()
    again = [one_pass() for _ in range(max(1, case.rounds))]
    best = min(again, key=lambda done: sum(done[0]))
    records = []
    for name, (seconds, steps, new_traces) in (("stream", first), ("second_pass", best)):
        record: Record = {
            "case": name,
            "impl": case.impl,
            "sizes": list(case.sizes),
            "octaves": params.octaves,
            "iterations": params.iterations,
            "s_per_dream": _sig(sum(seconds) / len(seconds)),
            "s_per_step": _sig(sum(seconds) / steps),
            "first_dream_s": _sig(seconds[0]),
            "total_s": _sig(sum(seconds)),
            "build_s": _sig(build_s),
            "new_traces": new_traces if name == "stream" else sum(done[2] for done in again),
            "traces": dreamer.trace_count,
            **dreamer_options(dreamer),
        }
        if name == "second_pass":
            passes = [sum(done[0]) / len(done[0]) for done in again]
            record["passes_s_per_dream"] = [_sig(value) for value in passes]
            record["median_s_per_dream"] = _sig(statistics.median(passes))
        records.append(record)
    return records


def run_sizes(case: Case) -> list[Record]:
    """A long-running bot's view: after warm-up, every new size adds no trace and no memory."""
    dreamer = make_dreamer(case)
    params = bench_params(case).replace(octaves=1, iterations=1)
    # Warm up at the largest size, so later growth would be a leak, not a bigger image.
    largest = max(case.sizes, key=lambda size: int(size.split("x")[0]) * int(size.split("x")[1]))
    dreamer.dream(noise_image(largest), params)
    traces, rss = dreamer.trace_count, {"after_warm_up": _status_kib("VmRSS") // 1024}
    for index, size in enumerate(case.sizes, start=1):
        dreamer.dream(noise_image(size), params)
        if index in (10, len(case.sizes)):
            rss[f"after_{index}_sizes"] = _status_kib("VmRSS") // 1024
    return [
        {
            **case.label(),
            "distinct_sizes": len(set(case.sizes)),
            "new_traces": dreamer.trace_count - traces,
            "rss_mib": rss,
            **dreamer_options(dreamer),
        }
    ]


SWEEP_STEPS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64)  # the compare sweep's values


def run_sweep_case(case: Case) -> list[Record]:
    """One comparison on one engine against one run per variant, for a compare and a sheet.

    impl "cli": every side is a `python -m dream_engine` process, exactly as a user
    would run `compare` once or the plain command once per variant. impl "library":
    one engine in this process against a fresh engine per variant (model build and
    trace per run, without the process start), so `--quick` stays quick.
    """
    from dream_engine.core.models import get_model_spec

    params = bench_params(case).replace(iterations=case.steps)
    steps = SWEEP_STEPS[: case.variants]
    sheet = get_model_spec(case.model).contact_sheet_layers()[: case.sheet_layers]
    runner = _sweep_by_cli if case.impl == "cli" else _sweep_in_library
    records = []
    for of, count in (("compare", len(steps)), ("layers", len(sheet))):
        one_s, separate = runner(case, params, of, steps, sheet)
        records.append(
            {
                "case": "sweep",
                "impl": "one_engine_vs_separate",
                "runs_as": "cli processes" if case.impl == "cli" else "engines in one process",
                "of": of,
                "variants": count,
                "size": case.sizes[0],
                "octaves": params.octaves,
                "iterations": params.iterations,
                "one_engine_s": _sig(one_s),
                "separate_s": _sig(sum(separate)),
                "separate_runs_s": [_sig(seconds) for seconds in separate],
                "ratio": _sig(sum(separate) / one_s, 3),
            }
        )
    return records


def _sweep_in_library(
    case: Case, params: Any, of: str, steps: tuple[float, ...], sheet: tuple[str, ...]
) -> tuple[float, list[float]]:
    from dream_engine import DreamEngine
    from dream_engine.study.sweeps import Variant, layer_variants, run_sweep

    image = noise_image(case.sizes[0])
    if of == "compare":
        variants = [Variant(f"step={step:g}", params.replace(step=step)) for step in steps]
    else:
        variants = layer_variants(params.model, params, sheet)

    def one_engine() -> None:
        engine = DreamEngine(model=case.model, weights=case.weights, seed=0)
        run_sweep(engine, image, params, variants)

    def one_run(variant: Any) -> None:
        DreamEngine(model=case.model, weights=case.weights, seed=0).dream(image, variant.params)

    return timed(one_engine)[0], [timed(one_run, variant)[0] for variant in variants]


def _sweep_by_cli(
    case: Case, params: Any, of: str, steps: tuple[float, ...], sheet: tuple[str, ...]
) -> tuple[float, list[float]]:
    with tempfile.TemporaryDirectory() as folder:
        image = Path(folder) / "noise.png"
        noise_image(case.sizes[0]).save(image)
        layers = ",".join(f"{name}={weight:g}" for name, weight in params.layers.items())
        common = [
            "--weights", case.weights, "--model", params.model, "--octaves", str(params.octaves),
            "--octave-scale", str(params.octave_scale), "--iterations", str(params.iterations),
            "--max-loss", str(params.max_loss), "--max-side", str(max(parse_size(case.sizes[0]))),
            "-o", str(Path(folder) / "out.png"),
        ]  # fmt: skip

        def cli(*args: str) -> float:
            command = [sys.executable, "-m", "dream_engine", *args, *common]
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
            seconds, done = timed(
                lambda: subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
            )
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(args[:1])} failed: {done.stderr[-500:]}")
            return seconds

        step = f"{params.step:g}"
        if of == "compare":
            vary = "step=" + ",".join(f"{value:g}" for value in steps)
            one_s = cli("compare", str(image), "--layers", layers, "--vary", vary)
            runs = [cli(str(image), "--layers", layers, "--step", f"{v:g}") for v in steps]
        else:
            one_s = cli("layers", str(image), "--layers", ",".join(sheet), "--step", step)
            runs = [cli(str(image), "--layers", layer, "--step", step) for layer in sheet]
    return one_s, runs


RUNNERS: dict[str, Callable[[Case], list[Record]]] = {
    "matmul_peak": run_matmul_peak,
    "flops": run_flops,
    "steady": run_steady,
    "precision": run_steady,
    "tiling": run_steady,
    "huge": run_steady,
    "stream": run_stream,
    "sizes": run_sizes,
    "sweep": run_sweep_case,
}


def run_here(case: Case, isolated: bool) -> list[Record]:
    """Run `case` in this process; a refused engine option becomes a "skipped" record."""
    try:
        records = RUNNERS[case.case](case)
    except Skipped as why:
        return [
            {**case.label(), "sizes": list(case.sizes), **case.engine_options, "skipped": str(why)}
        ]
    memory = memory_fields(isolated)
    return [{**record, **memory} for record in records]


# --- The two implementations behind one face ----------------------------------------------------


def make_dreamer(case: Case, impl: str | None = None) -> Any:
    """`impl` (default `case.impl`): the engine with `case.engine_options`, or the
    reference (untiled, float32 by design).

    "engine" runs at float32 unless the case says otherwise, so engine against
    reference compares the same arithmetic; "engine_auto" runs at the default
    precision, `auto`, as a user gets it."""
    impl = impl or case.impl
    if impl == "reference":
        from benchmarks.reference import ReferenceDreamer

        return ReferenceDreamer(case.model, case.weights, seed=0)
    from dream_engine import DreamEngine, ParamError

    try:
        options = {"precision": ENGINE_PRECISION[impl], **case.engine_options}
        engine = DreamEngine(model=case.model, weights=case.weights, seed=0, **options)
    except TypeError as error:
        raise Skipped(f"DreamEngine does not accept {case.engine_options} yet: {error}") from None
    except ParamError as error:
        raise Skipped(f"DreamEngine refused {case.engine_options}: {error}") from None
    return _CountingEngine(engine)


class _CountingEngine:
    """The engine, counting the steps it really ran (a `max_loss` stop would skew s/step)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.steps_taken = 0

    @property
    def trace_count(self) -> int:
        return self.engine.trace_count

    def dream(self, image: Any, params: Any) -> Any:
        result = self.engine.dream(image, params)
        self.steps_taken += sum(len(history) for history in result.losses)
        return result


def dreamer_options(dreamer: Any) -> Record:
    """The engine's precision and tiling as it actually ran (defaults included)."""
    engine = getattr(dreamer, "engine", None)
    if engine is None:
        return {"precision": "float32", "tile_size": None}
    return {
        "precision": _plain(getattr(engine, "precision", "float32")),
        "tile_size": _plain(getattr(engine, "tile_size", None)),
    }


def _plain(value: Any) -> Any:
    """JSON-safe: an engine setting that is some sentinel object is reported by name."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)


def bench_params(case: Case) -> Any:
    """The preset, with `max_loss` out of reach so both implementations run every step."""
    from dream_engine import load_preset

    return load_preset(case.preset).replace(model=case.model, max_loss=1e6)


def noise_image(size: str) -> Any:
    """The same noise for every implementation (FLOPs don't depend on content)."""
    import numpy as np
    from PIL import Image

    width, height = parse_size(size)
    rng = np.random.default_rng(width * 100_003 + height)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def parse_size(size: str) -> tuple[int, int]:
    width, height = size.lower().split("x")
    return int(width), int(height)


def timed(function: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def _sig(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr for a while: C++ code prints past `sys.stdout`."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


# --- Child processes ----------------------------------------------------------------------------


def run_child(case: Case) -> list[Record]:
    """Run `case` in a fresh Python, so its peak RSS and its traces are its own.

    A child that dies (memory cap, OOM killer, timeout) yields one record saying
    how, with the peak RSS the kernel saw; that is a result, not an error.
    """
    command = [sys.executable, "-m", "benchmarks.engine", "--child", case.to_json()]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=err)
        timeout = case.timeout_s or CHILD_TIMEOUT_S
        status, usage, timed_out = _wait(process, timeout)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if status == 0 and not timed_out:
        return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [
        {
            **case.label(),
            "sizes": list(case.sizes),
            **case.engine_options,
            "failed": _failure(status, timed_out, timeout, stderr),
            "after_s": _sig(seconds),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "mem_cap_gib": case.mem_cap_gib,
        }
    ]


def _wait(process: subprocess.Popen, timeout: float) -> tuple[int, Any, bool]:
    """Wait for the child with `os.wait4`, which also gives its own peak RSS."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage, False
        if time.monotonic() > deadline:
            process.kill()
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage, True
        time.sleep(0.2)


MEMORY_SIGNS = ("OOM", "bad_alloc", "MemoryError", "could not create a primitive", "allocat")


def _failure(status: int, timed_out: bool, timeout: float, stderr: str) -> str:
    """How a child failed, in one line: timeout, a signal, or its exception and memory sign.

    Under an address-space cap TensorFlow fails in several shapes (MemoryError,
    ResourceExhaustedError "OOM when allocating", oneDNN's AbortedError "could
    not create a primitive", std::bad_alloc): the line naming it is kept.
    """
    if timed_out:
        return f"timeout after {timeout:g} s"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    exception = next((line for line in reversed(lines) if EXCEPTION_LINE.match(line)), "")
    memory = next((line for line in reversed(lines) if any(s in line for s in MEMORY_SIGNS)), "")
    parts = [EXCEPTION_LINE.sub(r"\1:", exception), memory if memory != exception else ""]
    why = " | ".join(part[:200] for part in parts if part) or "no error message"
    if status < 0:
        name = signal.Signals(-status).name
        hint = " (the OOM killer?)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}; {why}"
    return f"exit {status}: {why}"


def child_main(spec: str) -> None:
    """`--child SPEC`: cap memory before TensorFlow loads, run one case, print its records."""
    case = Case.from_json(spec)
    if case.mem_cap_gib:
        cap = int(case.mem_cap_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    for record in run_here(case, isolated=True):
        print(json.dumps(record), flush=True)
