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
        ("steady", "engine_auto", "median_s_per_step"),
        ("tiling", "engine", "s_per_step"),
        ("stream", "engine", "s_per_dream"),
        ("stream", "reference", "s_per_dream"),
        ("stream", "reference", "peak_rss_mib"),
        ("stream", "engine_auto", "s_per_step"),
        ("second_pass", "engine", "s_per_dream"),
        ("second_pass", "engine_auto", "s_per_step"),
        ("second_pass", "reference", "s_per_step"),
        ("speedup", "engine_vs_reference", "ratio"),
        ("speedup", "engine_auto_vs_reference", "ratio"),
        ("sweep", "one_engine_vs_separate", "one_engine_s"),
        ("sweep", "one_engine_vs_separate", "separate_s"),
        ("sweep", "one_engine_vs_separate", "ratio"),
    ],
)
def test_case_reports_positive_numbers(records, case, impl, positive):
    for record in find(records, case, impl):
        if "skipped" not in record:
            assert record[positive] > 0, record


def test_every_impl_times_the_same_sizes_taking_turns(records):
    impls = ("engine", "engine_auto", "reference")
    sizes = {impl: {r["size"] for r in find(records, "steady", impl)} for impl in impls}
    assert sizes["engine"] == sizes["engine_auto"] == sizes["reference"]
    assert len(sizes["engine"]) >= 2
    for record in records:
        if record["case"] == "steady":
            assert record["taking_turns_with"] == list(impls)
            assert len(record["rounds_s_per_step"]) >= 1


def test_the_auto_engine_runs_at_the_precision_auto_chooses_here(records):
    from dream_engine.core.hardware import choose_precision

    expected = choose_precision("inceptionv3", "auto").precision
    for case in ("steady", "stream", "second_pass"):
        for record in find(records, case, "engine_auto"):
            assert record["precision"] == expected, record
    for record in find(records, "steady", "engine"):
        assert record["precision"] == "float32"


def test_a_second_pass_over_the_same_sizes_traces_nothing_new(records):
    for impl in ("engine", "engine_auto", "reference"):
        (first,) = find(records, "stream", impl)
        (second,) = find(records, "second_pass", impl)
        assert second["sizes"] == first["sizes"]
        assert first["new_traces"] >= 1
        assert second["new_traces"] == 0, second


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
