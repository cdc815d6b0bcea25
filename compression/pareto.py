"""Non-dominated sets and budget questions over measured Results: accuracy (higher is better) against size,
latency or FLOPs (lower is better), per data set and model. Import-light (no torch), so the CLI answers from
the store at once.

Latency is compared on one scale: every result's ratio to its baseline is timed interleaved with that baseline
in one process, which repeats far better on a shared machine than absolute times taken in different processes,
so a result's latency is the stored baseline's p50 divided by the result's speed-up.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from compression.errors import CompressionError
from compression.recipe import Recipe
from compression.result import Result, is_measured

METRICS: tuple[str, ...] = ("size", "latency", "flops")
# How each metric is shown and asked for: (unit, value of one unit in the metric's own unit, axis title).
UNITS: dict[str, tuple[str, float, str]] = {
    "size": ("KB", 1024.0, "ONNX file size (KB)"),
    "latency": ("ms", 1.0, "latency p50 (ms, normalised to the baseline's p50)"),
    "flops": ("MFLOPs", 1e6, "MFLOPs per sample"),
}
# Accuracies closer than this are equal (they are ratios of small integer counts, stored as floats).
_EPS = 1e-9


def check_metric(metric: str) -> None:
    """Raise a one-line CompressionError unless `metric` is one of METRICS."""
    if metric not in METRICS:
        raise CompressionError(f"unknown metric '{metric}': choose one of {', '.join(METRICS)}")


def metric_value(result: Result, metric: str, baseline: Result | None = None) -> float | None:
    """The cost of `result` in `metric`'s own unit: size in bytes of the deployable file, FLOPs per sample, or
    latency in ms at the recipe's batch (p50), normalised to `baseline`'s stored p50 (to the result's own
    interleaved baseline timing without one). None when latency was not measured (a simulated format)."""
    check_metric(metric)
    if metric == "size":
        return float(result.size_bytes)
    if metric == "flops":
        return float(result.flops)
    if not result.latency_measured or result.speedup_vs_baseline is None:
        return None
    reference = baseline.latency_ms if baseline is not None else result.baseline_latency_ms
    return reference.p50 / result.speedup_vs_baseline


def _stage_count(result: Result) -> int:
    return len(Recipe.from_dict(result.recipe).stages)


def _unique(results: Sequence[Result], baseline: Result | None) -> list[Result]:
    """`results` and the baseline, each recipe once (the first occurrence)."""
    seen: dict[str, Result] = {}
    for result in [*results, *([baseline] if baseline is not None else [])]:
        seen.setdefault(result.recipe_hash, result)
    return list(seen.values())


def deployable(results: Sequence[Result]) -> list[Result]:
    """The results a user can ship: measured by running their file in a runtime (not simulated in torch)."""
    return [r for r in results if is_measured(r)]


def frontier(results: Sequence[Result], metric: str, baseline: Result | None = None,
             simulated: bool = False) -> list[Result]:
    """The non-dominated results (no other is at least as accurate and at most as costly, and better in one),
    cheapest first, so accuracy rises along the list. The baseline, when given, is a candidate too; results
    without a value (unmeasured latency) are left out, and so are simulated ones unless `simulated` (a
    frontier answers what a user can ship). Equal points (same cost, same accuracy) appear once: the one with
    the fewest stages, then the smallest recipe hash, stands for them."""
    candidates = _unique(results if simulated else deployable(results), baseline)
    points = [(value, r) for r in candidates if (value := metric_value(r, metric, baseline)) is not None]
    points.sort(key=lambda p: (p[0], -p[1].accuracy, _stage_count(p[1]), p[1].recipe_hash))
    chosen: list[Result] = []
    for _, result in points:
        if not chosen or result.accuracy > chosen[-1].accuracy + _EPS:
            chosen.append(result)
    return chosen


def most_accurate_under(results: Sequence[Result], metric: str, limit: float,
                        baseline: Result | None = None, simulated: bool = False) -> Result | None:
    """The most accurate result whose `metric` is at most `limit` (bytes, ms or FLOPs); of equally accurate
    ones, the cheapest; a deployable one unless `simulated`. None when nothing fits."""
    fitting = [r for r in frontier(results, metric, baseline, simulated) if metric_value(r, metric, baseline) <= limit]
    return fitting[-1] if fitting else None


def smallest_within(results: Sequence[Result], baseline: Result, points: float,
                    metric: str = "size", simulated: bool = False) -> Result | None:
    """The result with the lowest `metric` whose accuracy is at most `points` percentage points below the
    baseline's (the baseline itself qualifies); of equally cheap ones, the most accurate; a deployable one
    unless `simulated`."""
    if points < 0:
        raise CompressionError(f"accuracy points must not be negative, got {points}")
    floor = baseline.accuracy - points / 100 - _EPS
    return next((r for r in frontier(results, metric, baseline, simulated) if r.accuracy >= floor), None)


def groups(results: Sequence[Result]) -> dict[str, list[Result]]:
    """Results by the hash of their baseline recipe (same data, model, training and timing setup), each group
    in the given order. A baseline result falls into its own group."""
    grouped: dict[str, list[Result]] = {}
    for result in results:
        grouped.setdefault(Recipe.from_dict(result.recipe).baseline().hash, []).append(result)
    return grouped


def baseline_of(results: Sequence[Result]) -> Result | None:
    """The uncompressed result among `results` (the first, if several), or None."""
    return next((r for r in results if Recipe.from_dict(r.recipe).is_baseline), None)


@dataclass(frozen=True)
class Budget:
    """One budget question. kind "under": the most accurate result whose `metric` is at most `value` (in the
    metric's own unit: bytes, ms, FLOPs); kind "within": the lowest `metric` within `value` accuracy points of
    the baseline."""

    kind: str
    metric: str
    value: float

    def __post_init__(self) -> None:
        check_metric(self.metric)
        if self.kind not in ("under", "within"):
            raise CompressionError(f"unknown budget kind '{self.kind}': choose under or within")
        if not math.isfinite(self.value):
            raise CompressionError(f"a budget must be a finite number, got {self.value:g} for {self.metric}")
        if self.value < 0:
            raise CompressionError(f"a budget must not be negative, got {self.value:g} for {self.metric}")

    @property
    def question(self) -> str:
        """The question in words, e.g. 'most accurate under 12.5 KB'."""
        if self.kind == "within":
            lowest = {"size": "smallest", "latency": "fastest", "flops": "fewest FLOPs"}[self.metric]
            return f"{lowest} within {self.value:g} point{'' if self.value == 1 else 's'} of the baseline"
        unit, scale, _ = UNITS[self.metric]
        return f"most accurate under {self.value / scale:.4g} {unit}"

    def answer(self, results: Sequence[Result], baseline: Result, simulated: bool = False) -> Result | None:
        """The result that answers this question among `results` and `baseline` (deployable ones unless
        `simulated`), or None."""
        if self.kind == "within":
            return smallest_within(results, baseline, self.value, self.metric, simulated)
        return most_accurate_under(results, self.metric, self.value, baseline, simulated)


def default_budgets(baseline: Result) -> list[Budget]:
    """Questions worth asking of any sweep: the cheapest model within 1 point of the baseline by each metric,
    and the most accurate at half the baseline's size and latency."""
    budgets = [Budget("within", metric, 1.0) for metric in METRICS]
    budgets.append(Budget("under", "size", baseline.size_bytes / 2))
    if baseline.latency_ms is not None:
        budgets.append(Budget("under", "latency", baseline.latency_ms.p50 / 2))
    return budgets


def summary(result: Result, baseline: Result | None = None) -> dict[str, Any]:
    """A result's point for JSON answers: its recipe, accuracy and the three costs (latency normalised)."""
    return {"recipe_hash": result.recipe_hash, "technique": result.technique, "recipe": result.recipe,
            "accuracy": result.accuracy, "accuracy_source": result.accuracy_source, "size_bytes": result.size_bytes,
            "latency_ms": metric_value(result, "latency", baseline), "flops": result.flops}
