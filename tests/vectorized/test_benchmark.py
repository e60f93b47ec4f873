"""benchmarks/vectorized.py's pairs: the vectorized run against raw torch.func compared
within each pair of samples run in turn, since the machine's rate drifts between them."""

from __future__ import annotations

import importlib.util
import sys

from support.paths import ROOT

BENCHMARKS = ROOT / "benchmarks"


def benchmark():
    """benchmarks/vectorized.py as a module (it imports from benchmarks/ and examples/)."""
    spec = importlib.util.spec_from_file_location("vectorized_benchmark",
                                                  BENCHMARKS / "vectorized.py")
    module = importlib.util.module_from_spec(spec)
    path = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = path
    return module


def row(system, rate, pair=None, population=512, steps=256):
    return {"system": system, "rate": rate, "population": population, "steps": steps,
            **({} if pair is None else {"pair": pair})}


def test_the_ratio_to_raw_is_the_median_of_the_pairs_not_of_the_medians():
    bench = benchmark()
    # the machine slows in the second pair: each pair says 0.9, the medians say otherwise
    rows = [row("vectorized", 900, 0), row("raw", 1000, 0), row("raw", 500, 1),
            row("vectorized", 450, 1), row("vectorized", 990, 2), row("raw", 1100, 2),
            row("local", 300), row("raw", 9, 0, population=8)]
    assert bench.paired(rows, 512, 256) == [0.9, 0.9, 0.9]
    assert bench.ratio(rows, 512, 256, "raw") == "0.90 (0.90 to 0.90, 3 pairs)"
    typical = bench.typical(rows, 256)
    assert typical["vectorized", 512]["rate"] == 900 and typical["raw", 512]["rate"] == 1000
    assert bench.ratio(rows, 512, 256, "local") == "3.00"  # the typical sample's
    assert bench.ratio(rows, 128, 256, "raw") is None
    assert bench.paired(rows, 512, 640) == []  # the longer runs are other rows


def test_a_row_of_no_pair_is_the_one_pair():
    bench = benchmark()
    rows = [row("vectorized", 800), row("raw", 1000)]
    assert bench.ratio(rows, 512, 256, "raw") == "0.80"
