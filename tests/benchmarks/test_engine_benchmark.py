"""`python -m benchmarks.engine --quick` runs, prints JSON, and shows the engine's trace property.

The benchmark is read by people, so timings are never asserted here; this test
keeps the script from rotting (every case runs, every line parses) and checks
the one property that is not a timing: a stream of image sizes traces the
engine's graph no more often than the plain keras.io loop traces its own.

The run takes a minute of CPU, so it starts with the session at the lowest priority
and this module runs last (`BACKGROUND`, tests/conftest.py): no timing is read here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # the benchmark builds a dozen engines

BACKGROUND = [sys.executable, "-m", "benchmarks.engine", "--quick"]


@pytest.fixture(scope="module")
def records(background_run: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    result = background_run
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines, "the benchmark printed nothing"
    return [json.loads(line) for line in lines]  # every stdout line is one JSON record


def find(records: list[dict[str, Any]], case: str, impl: str) -> list[dict[str, Any]]:
    found = [record for record in records if record["case"] == case and record["impl"] == impl]
    assert found, f"no {case}/{impl} record"
    return found


def test_every_record_names_its_case_and_impl(records):
    for record in records:
        assert isinstance(record["case"], str) and isinstance(record["impl"], str)
    assert records[0]["case"] == "machine"
    assert records[0]["cores"] >= 1


@pytest.mark.parametrize(
    ("case", "impl", "positive"),
    [
        ("matmul_peak", "host", "gflops"),
        ("flops", "reference", "gflop_per_step"),
        ("steady", "engine", "s_per_step"),
        ("steady", "reference", "s_per_step"),
        ("steady", "engine", "gflops"),
        ("steady", "reference", "fraction_of_peak"),
        ("steady", "engine", "peak_rss_mib"),
        ("tiling", "engine", "s_per_step"),
        ("stream", "engine", "s_per_dream"),
        ("stream", "reference", "s_per_dream"),
        ("stream", "reference", "peak_rss_mib"),
        ("speedup", "engine_vs_reference", "ratio"),
        ("sweep", "one_engine_vs_separate", "one_engine_s"),
        ("sweep", "one_engine_vs_separate", "separate_s"),
        ("sweep", "one_engine_vs_separate", "ratio"),
    ],
)
def test_case_reports_positive_numbers(records, case, impl, positive):
    for record in find(records, case, impl):
        if "skipped" not in record:
            assert record[positive] > 0, record


def test_both_impls_time_the_same_sizes(records):
    sizes = {
        impl: {r["size"] for r in find(records, "steady", impl)} for impl in ("engine", "reference")
    }
    assert sizes["engine"] == sizes["reference"]
    assert len(sizes["engine"]) >= 2


def test_precision_cases_run_or_say_why_not(records):
    for record in find(records, "precision", "engine"):
        assert record.get("s_per_step", 0) > 0 or record.get("skipped"), record


def test_engine_stream_traces_no_more_than_reference(records):
    (engine,) = find(records, "stream", "engine")
    (reference,) = find(records, "stream", "reference")
    assert engine["traces"] >= 1 and reference["traces"] >= 1
    assert engine["traces"] <= reference["traces"]


def test_sweep_times_a_compare_and_a_layer_sheet(records):
    sweeps = find(records, "sweep", "one_engine_vs_separate")
    assert [record["of"] for record in sweeps] == ["compare", "layers"]
    for record in sweeps:
        assert len(record["separate_runs_s"]) == record["variants"] >= 2
