"""`python -m benchmarks.scaleout` in a tiny run: it keeps working, and prints what README
quotes (one JSON line per executor, then the cluster model). Timings are never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytest.importorskip("ray", reason="Ray is not installed: pip install '.[ray]'")
pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_the_scaleout_benchmark_runs_every_executor_and_the_model():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.scaleout", "--jobs", "1", "--side", "96",
         "--iterations", "2", "--workers", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=240,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r.get("executor"), r.get("workers")) for r in records[:2]] == [
        ("local", 1),
        ("ray", 1),
    ]
    for record in records[:2]:
        assert record["jobs"] == 1 and record["dreams_per_min"] > 0
        assert 0 < record["overhead_per_job_s"] < 10
    model = records[2]
    assert model["ray_overhead_share"] == records[1]["overhead_share"]
    per_hour = model["cluster_per_hour"]
    assert per_hour["4"] == pytest.approx(4 * per_hour["1"], rel=0.01)
