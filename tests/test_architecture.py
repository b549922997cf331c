"""The rules the layout promises, checked on the source so a change that breaks one fails CI.

- Layers, lowest first: `errors` <- `core` <- `media` <- `study` | `motion` <- `runtime` <-
  `service` | `cli` <- the package's public API <- `bot.py` <- `cogs/`. A module imports
  only its own layer and the layers below; `service` and `cli` are peers that never
  import each other.
- No two modules import each other, directly or round a longer circle.
- The engine knows nothing of Discord; the bot and its cogs load no TensorFlow (checked
  in a fresh interpreter too, so what other tests imported does not count).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# Rank of each layer; a module may import a module of lower or equal rank (peers excepted).
LAYERS: dict[str, int] = {
    "dream_engine.errors": 0,
    "dream_engine.core": 1,
    "dream_engine.media": 2,
    "dream_engine.study": 3,
    "dream_engine.motion": 3,  # a peer of study: both run sequences of dreams on the engine
    "dream_engine.runtime": 4,
    "dream_engine.service": 5,
    "dream_engine.cli": 5,
    "dream_engine": 6,  # the package's own __init__ and __main__: the public API
    "bot": 7,
    "cogs": 8,
}
PEERS_THAT_MUST_NOT_MEET = {frozenset({"dream_engine.service", "dream_engine.cli"})}
FORBIDDEN: dict[str, set[str]] = {  # layer -> third-party packages it must never import
    "dream_engine": {"discord"},
    "cogs": {"tensorflow", "keras"},
    "bot": {"tensorflow", "keras"},
}


def layer_of(module: str) -> str:
    """The longest layer name that `module` is or lies under."""
    matches = [name for name in LAYERS if module == name or module.startswith(name + ".")]
    if not matches:
        raise AssertionError(f"{module} lies in no layer; add it to LAYERS")
    return max(matches, key=len)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str, is_package: bool, known: set[str]) -> set[str]:
    """Every module `path` imports, at the top or inside a function (a lazy import is
    still a dependency), with `from package import submodule` resolved to the submodule."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = {f"{base}.{alias.name}" for alias in node.names}
            found.update(submodules if submodules <= known else {base})
    return found


def import_graph(root: Path, top: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (third-party names kept with a `!`)."""
    files = [
        path
        for name in top
        for path in (
            sorted((root / name).rglob("*.py")) if (root / name).is_dir() else [root / name]
        )
        if path.exists()
    ]
    modules = {module_name(path, root): path for path in files}
    ours = {module.split(".")[0] for module in modules}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges = set()
        for imported in imports_of(path, module, path.name == "__init__.py", set(modules)):
            if imported in modules:
                edges.add(imported)
            elif imported.split(".")[0] not in ours:
                edges.add("!" + imported.split(".")[0])
            else:
                raise AssertionError(f"{module} imports {imported}, which does not exist")
        edges.discard(module)
        graph[module] = edges
    return graph


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, edges in sorted(graph.items()):
        mine = layer_of(module)
        for imported in sorted(edges):
            if imported.startswith("!"):
                banned = next((b for layer, b in FORBIDDEN.items() if mine.startswith(layer)), ())
                if imported[1:] in banned:
                    problems.append(f"{module} imports {imported[1:]}")
                continue
            theirs = layer_of(imported)
            if theirs == "dream_engine" and mine != "dream_engine":
                # The package __init__ re-exports the core; reaching it from inside the
                # package would import the public API from below it.
                if mine.startswith("dream_engine."):
                    problems.append(f"{module} imports the package API ({imported})")
                continue
            if LAYERS[theirs] > LAYERS[mine]:
                problems.append(f"{module} ({mine}) imports {imported} from above ({theirs})")
            elif frozenset({mine, theirs}) in PEERS_THAT_MUST_NOT_MEET:
                problems.append(f"{module} ({mine}) imports its peer {imported} ({theirs})")
    return problems


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt.startswith("!") or nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


PROJECT = ("dream_engine", "cogs", "bot.py")


def test_every_module_imports_only_its_layer_and_below():
    assert layer_violations(import_graph(REPO, PROJECT)) == []


def test_no_modules_import_each_other():
    assert import_circles(import_graph(REPO, PROJECT)) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (  # the core reaching up into the service
            {"dream_engine/core/engine.py": "from dream_engine.service.queue import Job\n"},
            "dream_engine.core.engine (dream_engine.core) imports dream_engine.service.queue",
        ),
        (  # a lazy import counts as much as one at the top
            {"dream_engine/media/images.py": "def f():\n    from dream_engine.cli import main\n"},
            "dream_engine.media.images (dream_engine.media) imports dream_engine.cli.main",
        ),
        (
            {"dream_engine/cli/main.py": "from ..service import queue\n"},
            "imports its peer dream_engine.service.queue",
        ),
        ({"dream_engine/runtime/ray.py": "import discord\n"}, "imports discord"),
        ({"cogs/dream.py": "import tensorflow as tf\n"}, "cogs.dream imports tensorflow"),
    ],
)
def test_the_checker_catches_a_layer_violation(tmp_path, files, expected):
    base = {
        "dream_engine/__init__.py": "",
        "dream_engine/core/__init__.py": "",
        "dream_engine/core/engine.py": "",
        "dream_engine/media/__init__.py": "",
        "dream_engine/media/images.py": "",
        "dream_engine/runtime/__init__.py": "",
        "dream_engine/service/__init__.py": "",
        "dream_engine/service/queue.py": "",
        "dream_engine/cli/__init__.py": "",
        "dream_engine/cli/main.py": "",
        "cogs/__init__.py": "",
    }
    _write(tmp_path, {**base, **files})
    problems = layer_violations(import_graph(tmp_path, PROJECT))
    assert any(expected in problem for problem in problems), problems


def test_the_checker_catches_an_import_circle(tmp_path):
    _write(
        tmp_path,
        {
            "dream_engine/__init__.py": "",
            "dream_engine/cli/__init__.py": "",
            "dream_engine/cli/main.py": "from dream_engine.cli import study\n",
            "dream_engine/cli/study.py": "from dream_engine.cli.main import build_parser\n",
        },
    )
    graph = import_graph(tmp_path, PROJECT)
    assert layer_violations(graph) == []  # the same layer: only the circle is wrong
    assert import_circles(graph) == [["dream_engine.cli.main", "dream_engine.cli.study"]]


def imported_after(statement: str) -> set[str]:
    """Top-level modules loaded by `statement` in a fresh Python."""
    listing = "print(' '.join({m.split('.')[0] for m in sys.modules}))"
    script = f"import sys\n{statement}\n{listing}"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_the_bot_and_its_cogs_load_without_tensorflow():
    cogs = sorted(path.stem for path in (REPO / "cogs").glob("*.py") if path.stem != "__init__")
    loaded = imported_after("import bot, " + ", ".join(f"cogs.{name}" for name in cogs))
    assert "discord" in loaded
    assert not {"tensorflow", "keras"} & loaded


def test_the_engine_library_never_imports_discord():
    modules = sorted(
        module_name(path, REPO)
        for path in (REPO / "dream_engine").rglob("*.py")
        if "ray" not in path.stem and path.stem != "__main__"
    )
    loaded = imported_after("import " + ", ".join(modules))
    assert "tensorflow" in loaded
    assert "discord" not in loaded
