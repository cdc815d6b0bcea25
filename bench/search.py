"""Search targets on digits / cnn (issue 22), every number from the real CLI as new processes:

- with the same budget of 24 trained recipes, the search's frontier hypervolume (validation accuracy against
  ONNX size, reference point at the baseline's size and zero accuracy) is at least that of bench/sweep.py's
  24-recipe grid; both reported, with each frontier's test-split figures;
- within 40 trials (the same study resumed to 40, a budget fixed before any figure is seen), a recipe at least
  50× smaller than the baseline within 1 point of its test accuracy, with the default space (no hand-tuned
  epochs: the search chooses them).

Each side runs in its own store (its own baseline, trained identically), so the search is never served a
recipe the grid computed. The worker count is the machine's cores, as a user gets by default."""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, markdown_table, verdict, write
from sweep import GRID

from compression import pareto  # noqa: E402 - common puts the project on the path
from compression.result import Result  # noqa: E402
from compression.search import hypervolume  # noqa: E402

SMALLER, WITHIN_POINTS = 50, 1.0


def cli(home: Path, *args: str) -> tuple[float, str]:
    """Wall seconds of one CLI process and its stdout."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "compression", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "COMPRESSION_HOME": str(home)})
    if done.returncode != 0:
        sys.exit(f"{args[0]} failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1]}")
    return time.perf_counter() - started, done.stdout


def front_rows(results: list[Result], baseline: Result) -> list[list[str]]:
    """The validation frontier (accuracy against size) of `results`, with its test figures."""
    points = list({(r.val_accuracy, r.size_bytes): r for r in sorted(results, key=lambda r: r.size_bytes)}.values())
    front = [r for r in points if not any(o.val_accuracy >= r.val_accuracy and o.size_bytes <= r.size_bytes
                                          and o is not r for o in points)]
    return [[r.technique, f"{r.val_accuracy:.2%}", f"{r.accuracy:.2%}", f"{r.size_bytes / 1024:.1f}",
             f"×{baseline.size_bytes / r.size_bytes:.1f}"] for r in front]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        grid_home, search_home = Path(tmp) / "grid", Path(tmp) / "search"
        _, out = cli(grid_home, "baseline", "--json")
        baseline = Result.from_dict(json.loads(out))
        grid_seconds, out = cli(grid_home, "sweep", "--grid", json.dumps(GRID))
        grid = [Result.from_dict(json.loads(line)) for line in out.splitlines()]
        search24_seconds, out = cli(search_home, "search", "--trials", "24", "--json")
        at24 = json.loads(out)
        search40_seconds, out = cli(search_home, "search", "--trials", "40", "--json")
        at40 = json.loads(out)
        from compression.store import Store  # the search's results, read from its own store

        store = Store(search_home)
        import optuna

        study = optuna.load_study(study_name=at40["study"], storage=at40["storage"])
        trial_results = {t.number: store.get_result(t.user_attrs["recipe_hash"]) for t in study.trials
                         if t.state == optuna.trial.TrialState.COMPLETE}
    reference = [baseline.val_accuracy, float(baseline.size_bytes)]
    grid_hv = hypervolume([[r.val_accuracy, float(r.size_bytes)] for r in grid], reference)
    search_hv = at24["hypervolume"][-1]
    first24 = [r for n, r in trial_results.items() if n < 24]
    small = [r for r in trial_results.values()
             if r.size_bytes * SMALLER <= baseline.size_bytes
             and r.accuracy >= baseline.accuracy - WITHIN_POINTS / 100 - 1e-9]
    best_small = max(small, key=lambda r: r.accuracy, default=None)
    smallest_close = min((r for r in trial_results.values()
                          if r.accuracy >= baseline.accuracy - WITHIN_POINTS / 100 - 1e-9),
                         key=lambda r: r.size_bytes, default=None)
    checks = [
        ("search HV (24 trials) ≥ grid HV (24 recipes), validation", f"{search_hv:.4f} vs {grid_hv:.4f}",
         search_hv >= grid_hv),
        (f"within 40 trials: ≥ {SMALLER}× smaller, within {WITHIN_POINTS:g} pt of test accuracy",
         (f"{best_small.technique}: ×{baseline.size_bytes / best_small.size_bytes:.1f}, test "
          f"{best_small.accuracy:.2%} vs {baseline.accuracy:.2%}") if best_small else
         (f"none; smallest within {WITHIN_POINTS:g} pt: ×{baseline.size_bytes / smallest_close.size_bytes:.1f}"
          if smallest_close else "none within 1 pt"), best_small is not None),
    ]
    payload = {"grid": GRID, "workers": os.cpu_count(), "baseline": pareto.summary(baseline),
               "baseline_val_accuracy": baseline.val_accuracy, "grid_hypervolume": grid_hv,
               "search_hypervolume_24": search_hv, "search_hypervolume_history": at40["hypervolume"],
               "grid_seconds": round(grid_seconds, 1), "search_24_seconds": round(search24_seconds, 1),
               "search_40_more_seconds": round(search40_seconds, 1), "search_24": at24, "search_40": at40,
               "targets": {label: passed for label, _, passed in checks}}
    header = ["technique", "val acc", "test acc", "size (KB)", "smaller"]
    markdown = (
        "### Search: multi-objective TPE on digits / cnn, accuracy against size\n\n"
        f"Baseline: test {baseline.accuracy:.2%}, validation {baseline.val_accuracy:.2%}, "
        f"{baseline.size_bytes / 1024:.1f} KB. Grid: bench/sweep.py's 24 recipes ({grid_seconds:.0f} s). Search: the "
        f"default space, 24 trials ({search24_seconds:.0f} s), then resumed to 40 (+{search40_seconds:.0f} s); "
        f"{os.cpu_count()} worker processes. Hypervolume: validation accuracy × size saved, reference point at the "
        "baseline's size and zero accuracy.\n\n"
        + markdown_table(["target", "measured", "result"], [[t, m, verdict(p)] for t, m, p in checks])
        + "\n#### The grid's frontier (validation), with test figures\n\n"
        + markdown_table(header, front_rows(grid, baseline))
        + "\n#### The search's frontier after 24 trials (validation), with test figures\n\n"
        + markdown_table(header, front_rows(first24, baseline))
        + "\n#### The search's frontier after 40 trials\n\n"
        + markdown_table(header, front_rows(list(trial_results.values()), baseline))
    )
    write("search", payload, markdown)


if __name__ == "__main__":
    main()
