"""Engine benchmark: this engine against the plain keras.io loop, same machine, same inputs.

    python -m benchmarks.engine [--quick] [--model inceptionv3] [--weights random]
                                [--preset balanced] [--cases steady,stream,...]

Prints one JSON line per measurement, each with "case" and "impl" ("engine" at
float32, the reference's arithmetic; "engine_auto" at the default `precision=auto`;
"reference" = `benchmarks/reference.py`, float32; "host" for the machine itself;
"engine_vs_reference" and "engine_auto_vs_reference" for ratios):

- machine      CPU model, cores, TensorFlow version, AVX512_BF16/AMX flags
- matmul_peak  GFLOP/s of a large `tf.linalg.matmul` (float32, bfloat16, float16):
               the roof the achieved GFLOP/s are measured against
- flops        FLOPs of one gradient step per size, from TensorFlow's profiler
- steady       seconds per step once warm, per size: the three implementations in one
               process taking turns (5 rounds each, best and median); achieved GFLOP/s,
               share of the matmul peak of the precision it ran at
- stream       seconds per dream over five images of new sizes from a fresh instance,
               tracing included, as the bot sees it; traces
- second_pass  the same instance over the same sizes again, no tracing left (best of 3
               passes, and their median)
- precision    the engine's step in float32 and mixed precision
- tiling       the engine untiled and at smaller tiles (512, the common choice) at the largest
               steady size (steady runs its default tile): what tiling costs
- huge         4096x4096: the engine tiled; the reference untiled under a memory
               cap and a timeout (its failure is recorded, not raised)
- sizes        the engine after warm-up over many distinct sizes (50 in the full run):
               traces added (should be 0) and RSS after warm-up, 10 and all sizes
               (the compiled-loop cache must not grow in a long-running bot)
- speedup      reference time / engine time, for steady, stream, second_pass and huge
- sweep        a comparison on one engine against one run per variant, as separate
               commands would be: a 4-variant `compare` and an 11-layer `layers` sheet
               at 512 px (full: `python -m dream_engine` processes, each run building
               its model and tracing its loop; quick: engines built in this process)

Each big case runs in a fresh child process (`--child SPEC`), so its peak RSS
is its own. `--quick` runs tiny sizes in one process: it exists so CI runs the
script and it cannot rot. It is a benchmark, not a test: machines are noisy, so
the figures are read by people, never asserted. Random weights cost the same
FLOPs as trained ones, so the default runs offline.
"""

from __future__ import annotations

import argparse
import json
import os

from benchmarks.engine_plan import (
    CASES,
    ENGINE_PRECISION,
    FULL,
    IMPLS,
    PRECISION_PEAK_DTYPE,
    QUICK,
    Case,
    Plan,
    Record,
)
from benchmarks.engine_runs import (
    RUNNERS,
    _meminfo_kib,
    _sig,
    child_main,
    machine_info,
    run_child,
    run_here,
)

# --- The plan and the report --------------------------------------------------------------------


def build_cases(plan: Plan, args: argparse.Namespace, wanted: set[str]) -> list[Case]:
    """Every case to run, in print order; each steady size alone when isolating."""
    common = {"model": args.model, "weights": args.weights, "preset": args.preset}
    steady_sizes = [(size,) for size in plan.sizes] if plan.isolate else [plan.sizes]
    cases: list[Case] = []
    if "matmul_peak" in wanted:
        cases.append(Case("matmul_peak", "host", matmul_n=plan.matmul_n, **common))
    if "flops" in wanted:
        sizes = plan.sizes + ((plan.huge_size,) if plan.huge_size and "huge" in wanted else ())
        cases.append(Case("flops", "reference", sizes=sizes, **common))
    if "steady" in wanted:
        cases += [
            Case(
                "steady",
                "taking_turns",
                impls=IMPLS,
                sizes=sizes,
                steps=plan.steps,
                rounds=plan.rounds,
                **common,
            )
            for sizes in steady_sizes
        ]
    if "sizes" in wanted:
        # Distinct sizes in a scrambled order (37 is coprime with any count used here).
        order = [(i * 37) % plan.many_sizes for i in range(plan.many_sizes)]
        sizes = tuple(f"{100 + 7 * i}x{90 + 5 * i}" for i in order)
        cases.append(Case("sizes", "engine", sizes=sizes, **common))
    if "stream" in wanted:
        cases += [
            Case(
                "stream",
                impl,
                sizes=plan.stream,
                steps=plan.stream_iterations,
                rounds=plan.second_passes,
                **common,
            )
            for impl in IMPLS
        ]
    if "precision" in wanted:
        cases += [
            Case(
                "precision",
                "engine",
                sizes=(plan.precision_size,),
                steps=plan.steps,
                rounds=plan.rounds,
                engine_options={"precision": precision},
                **common,
            )
            for precision in plan.precisions
        ]
    if "tiling" in wanted:
        cases += [
            Case(
                "tiling",
                "engine",
                sizes=plan.sizes[-1:],
                steps=plan.steps,
                rounds=plan.rounds,
                engine_options={"tile_size": tile},
                **common,
            )
            for tile in plan.tilings
        ]
    if "sweep" in wanted:
        sweep = Case(
            "sweep",
            "cli" if plan.isolate else "library",
            sizes=(plan.sweep_size,),
            steps=plan.sweep_iterations,
            variants=plan.sweep_variants,
            sheet_layers=plan.sheet_layers,
            **common,
        )
        cases.append(sweep)
    if "huge" in wanted and plan.huge_size:
        cap = huge_memory_cap_gib()
        huge = {"sizes": (plan.huge_size,), "steps": plan.huge_steps, "mem_cap_gib": cap}
        cases += [
            Case("huge", "engine", engine_options={"tile_size": plan.huge_tile}, **huge, **common),
            Case("huge", "reference", timeout_s=300, **huge, **common),
        ]
    return cases


def huge_memory_cap_gib() -> float:
    """20 GiB, or less on a smaller box: the cap must fail the child, not the machine."""
    available = _meminfo_kib("MemAvailable") / 2**20
    return round(min(20.0, 0.7 * available), 1) if available else 20.0


class Report:
    """Prints records as they come and adds what needs earlier records: GFLOP/s and ratios."""

    def __init__(self, wanted: set[str]) -> None:
        self.wanted = wanted
        self.gflop: dict[str, float] = {}  # size -> GFLOP per step
        self.peak: dict[str, float] = {}  # dtype -> matmul GFLOP/s
        self.timed: dict[tuple[str, str, str], Record] = {}  # (case, impl, size) -> record
        self.done: set[tuple[str, str, str]] = set()  # speedups printed

    def emit(self, record: Record) -> None:
        if record["case"] == "flops":
            self.gflop[record["size"]] = record["gflop_per_step"]
        if record["case"] == "matmul_peak" and "gflops" in record:
            self.peak[record["dtype"]] = record["gflops"]
        if "s_per_step" in record:
            self._add_throughput(record)
        print(json.dumps(record), flush=True)
        if record["case"] in ("steady", "huge", "stream", "second_pass"):
            size = record.get("size") or ",".join(record.get("sizes", []))
            self.timed[(record["case"], record["impl"], size)] = record
            for engine in ENGINE_PRECISION:
                self._maybe_speedup(record["case"], engine, size)

    def _add_throughput(self, record: Record) -> None:
        gflop = self.gflop.get(record.get("size", ""))  # none for a stream of sizes
        if gflop is None:
            return
        record["gflop_per_step"] = gflop
        record["gflops"] = _sig(gflop / record["s_per_step"])
        dtype = PRECISION_PEAK_DTYPE.get(record.get("precision", "float32"), "float32")
        if dtype in self.peak:
            record["peak_dtype"] = dtype
            record["fraction_of_peak"] = _sig(record["gflops"] / self.peak[dtype], 3)

    def _maybe_speedup(self, case: str, impl: str, size: str) -> None:
        """The ratio of `impl` to the reference, once both are in (and only once)."""
        engine, reference = (self.timed.get((case, name, size)) for name in (impl, "reference"))
        done = (case, impl, size)
        if engine is None or reference is None or "speedup" not in self.wanted or done in self.done:
            return
        self.done.add(done)
        key = "s_per_dream" if case in ("stream", "second_pass") else "s_per_step"
        record: Record = {"case": "speedup", "impl": f"{impl}_vs_reference", "of": case}
        record["size" if "size" in engine else "sizes"] = size
        record["precision"] = engine.get("precision")
        if key in engine and key in reference:
            record["ratio"] = _sig(reference[key] / engine[key], 3)
            if "median_s_per_step" in engine and "median_s_per_step" in reference:
                medians = reference["median_s_per_step"] / engine["median_s_per_step"]
                record["ratio_of_medians"] = _sig(medians, 3)
        else:
            record["ratio"] = None
            record["note"] = "one side did not finish: see its record"
        record["traces"] = {"engine": engine.get("traces"), "reference": reference.get("traces")}
        print(json.dumps(record), flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes in one process (CI)")
    parser.add_argument("--model", default="inceptionv3")
    parser.add_argument("--weights", default="random", help="imagenet|random|PATH")
    parser.add_argument("--preset", default="balanced", help="layers and octaves to dream with")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}"
    )
    parser.add_argument("--child", metavar="SPEC", help="internal: run one case (JSON) and exit")
    args = parser.parse_args(argv)
    unknown = set(args.cases.split(",")) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}; choose from {CASES}")
    return args


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    if args.child:
        child_main(args.child)
        return
    plan = QUICK if args.quick else FULL
    wanted = set(args.cases.split(","))
    report = Report(wanted)
    if "machine" in wanted:
        report.emit({**machine_info(), "mode": "quick" if args.quick else "full"})
    for case in build_cases(plan, args, wanted):
        if case.impl == "cli":  # starts its own `python -m dream_engine` processes
            records = RUNNERS[case.case](case)
        elif plan.isolate:
            records = run_child(case)
        else:
            records = run_here(case, isolated=False)
        for record in records:
            report.emit(record)


if __name__ == "__main__":
    main()
