"""What one engine benchmark run measures: its plans (full, quick) and cases.

Shared by the runner (`engine_runs.py`) and the command (`engine.py`); plain data, so a
case crosses to a child process as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dream_engine.core.params import DEFAULT_TILE_SIZE

REPO = Path(__file__).resolve().parent.parent
CASES = (
    "machine",
    "matmul_peak",
    "flops",
    "steady",
    "stream",  # and its second pass over the same sizes
    "precision",
    "tiling",
    "huge",
    "sizes",
    "speedup",
    "sweep",
)
IMPLS = ("engine", "engine_auto", "reference")
#: The engine's precision per implementation name: "engine" runs the reference's arithmetic
#: (float32), "engine_auto" runs as a user gets it by default.
ENGINE_PRECISION = {"engine": "float32", "engine_auto": "auto"}
PRECISION_PEAK_DTYPE = {
    "float32": "float32",
    "mixed_bfloat16": "bfloat16",
    "mixed_float16": "float16",
}
Record = dict[str, Any]
CHILD_TIMEOUT_S = 900  # a hung child ends as a "timeout" record, not a hung benchmark
EXCEPTION_LINE = re.compile(r"^(?:[\w]+\.)*(\w+(?:Error|Exception|Exit)):")


@dataclass(frozen=True)
class Plan:
    """What one run measures: the full benchmark, or the tiny `--quick` one for CI."""

    sizes: tuple[str, ...]  # steady sizes, WxH
    steps: int  # timed steps per steady size
    rounds: int  # timed runs of those steps per implementation, taken in turn
    stream: tuple[str, ...]  # the stream's image sizes, in order
    stream_iterations: int  # iterations per octave in the stream
    second_passes: int  # passes over the stream's sizes once traced; the best counts
    precision_size: str
    precisions: tuple[str, ...]
    huge_size: str | None  # None: no huge case
    huge_steps: int
    huge_tile: int
    tilings: tuple[int | None, ...]  # the tiling case's tile sizes (None: untiled)
    matmul_n: int
    many_sizes: int  # distinct sizes in the "sizes" case
    isolate: bool  # each case in a fresh child process
    sweep_size: str  # the "sweep" case: image size,
    sweep_iterations: int  # iterations per octave,
    sweep_variants: int  # variants of the compare sweep (step values)
    sheet_layers: int  # layers of the sheet (the model's sheet, first ones)


FULL = Plan(
    sizes=("256x256", "512x384", "1024x768"),
    steps=10,
    rounds=5,
    stream=("300x200", "256x256", "410x300", "333x222", "500x375"),
    stream_iterations=10,
    second_passes=3,
    precision_size="512x384",
    precisions=("float32", "mixed_bfloat16", "mixed_float16", "auto"),
    huge_size="4096x4096",
    huge_steps=1,  # ~1.5 min a step on 2 cores; the warm-up step comes on top
    huge_tile=DEFAULT_TILE_SIZE,  # the default the bot runs with
    tilings=(None, 512),
    matmul_n=2048,
    many_sizes=50,
    isolate=True,
    sweep_size="512x384",
    sweep_iterations=10,
    sweep_variants=4,
    sheet_layers=11,
)
QUICK = Plan(
    sizes=("96x96", "120x90"),
    steps=2,
    rounds=1,
    stream=("120x90", "96x96"),
    stream_iterations=2,
    second_passes=1,
    precision_size="96x96",
    precisions=("float32", "mixed_bfloat16", "auto"),
    huge_size=None,
    huge_steps=0,
    huge_tile=0,
    tilings=(None,),
    matmul_n=512,
    many_sizes=3,
    isolate=False,
    sweep_size="96x96",
    sweep_iterations=1,
    sweep_variants=2,
    sheet_layers=2,
)


@dataclass(frozen=True)
class Case:
    """One measurement, small enough to pass to a child process as JSON."""

    case: str
    impl: str
    model: str = "inceptionv3"
    weights: str = "random"
    preset: str = "balanced"
    sizes: tuple[str, ...] = ()
    steps: int = 0  # timed steps (steady kinds) or iterations per octave (stream)
    rounds: int = 1  # steady kinds: timed runs of `steps`, the best and the median reported
    impls: tuple[str, ...] = ()  # steady: implementations timed in turn in one process
    engine_options: dict[str, Any] = field(default_factory=dict)  # DreamEngine(**options)
    matmul_n: int = 0
    mem_cap_gib: float | None = None  # RLIMIT_AS for the child: a failure, not a swapping box
    timeout_s: float | None = None
    variants: int = 0  # sweep: variants of the compare sweep
    sheet_layers: int = 0  # sweep: layers of the layer sheet

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Case:
        data = json.loads(text)
        data["sizes"] = tuple(data["sizes"])
        data["impls"] = tuple(data.get("impls", ()))
        return cls(**data)

    def label(self) -> Record:
        """The fields every record of this case starts with."""
        return {"case": self.case, "impl": self.impl}


class Skipped(Exception):
    """The engine does not offer what the case needs (yet): reported, not fatal."""
