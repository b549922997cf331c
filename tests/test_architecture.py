"""The rules the layout promises: the engine knows nothing of Discord, the bot loads no TensorFlow.

Checked in a fresh interpreter, so what other tests imported does not count.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


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
    loaded = imported_after(
        "import bot, cogs.dream, cogs.compare, cogs.queue, cogs.admin, cogs.replies"
    )
    assert "discord" in loaded
    assert not {"tensorflow", "keras"} & loaded


def test_the_engine_library_never_imports_discord():
    loaded = imported_after(
        "import dream_engine, dream_engine.engine, dream_engine.cli, dream_engine.cli_sweeps, "
        "dream_engine.sweeps, dream_engine.kinds, dream_engine.worker_process, "
        "dream_engine.job_store"
    )
    assert "tensorflow" in loaded
    assert "discord" not in loaded
