"""Sweep targets on digits / cnn, every number from the real CLI run as new processes, as a user would run it:

- a 24-recipe sweep (2 prune methods × 4 ratios × 3 quantization settings) with only the baseline stored
  completes within 180 s on the default worker processes (the machine's cores);
- the same sweep again, all served from the store, within 5 s;
- the sweep's whole process group SIGKILLed halfway (after 12 results), then re-run: exactly 24 results
  stored once each (and the baseline), the finished ones served from the store.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, markdown_table, verdict, write

from compression.store import Store

GRID = {"base": {"dataset": "digits", "model": "cnn"},
        "grid": {"prune.method": ["channel-l2", "l1-unstructured"], "prune.ratio": [0.3, 0.5, 0.7, 0.9],
                 "quant.mode": [None, "int8-static", "fp16"]}}
SWEEP = [sys.executable, "-m", "compression", "sweep", "--grid", json.dumps(GRID)]
BASELINE = [sys.executable, "-m", "compression", "baseline", "--dataset", "digits", "--model", "cnn", "--json"]


def env(home: Path) -> dict[str, str]:
    return {**os.environ, "COMPRESSION_HOME": str(home)}


def timed_sweep(home: Path) -> tuple[float, list[dict]]:
    """Wall seconds of one sweep process, and the result lines it printed."""
    started = time.perf_counter()
    done = subprocess.run(SWEEP, cwd=ROOT, env=env(home), capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"sweep failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1]}")
    return time.perf_counter() - started, [json.loads(line) for line in done.stdout.splitlines()]


def killed_halfway(home: Path, after: int = 12) -> int:
    """Start the sweep in its own process group and SIGKILL the whole group once `after` results are printed;
    return how many results the store holds then."""
    proc = subprocess.Popen(SWEEP, cwd=ROOT, env=env(home), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    for _ in range(after):
        proc.stdout.readline()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1)  # let the killed processes' file handles close
    return len(stored_hashes(home))


def stored_hashes(home: Path) -> list[str]:
    """The recipe hash of every result row in the store at `home` (a duplicate would show twice)."""
    return [p["recipe_hash"] for p in Store(home).list("result")]


def main() -> None:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        fresh, resumed = Path(tmp) / "fresh", Path(tmp) / "resumed"
        subprocess.run(BASELINE, cwd=ROOT, env=env(fresh), capture_output=True, check=True)
        shutil.copytree(fresh, resumed)  # both start with the baseline only
        first_seconds, first = timed_sweep(fresh)
        again_seconds, again = timed_sweep(fresh)
        after_kill = killed_halfway(resumed)
        rerun_seconds, rerun = timed_sweep(resumed)
        final = stored_hashes(resumed)
    load_after = os.getloadavg()
    computed = [r for r in first if not r["from_store"]]
    checks = [  # (target, measured, passed)
        ("24-recipe sweep, baseline stored: ≤ 180 s", f"{first_seconds:.1f} s, {len(computed)} computed",
         first_seconds <= 180 and len(computed) == 24),
        ("same sweep again: ≤ 5 s, all from the store", f"{again_seconds:.2f} s, "
         f"{sum(r['from_store'] for r in again)} of {len(again)} from the store",
         again_seconds <= 5 and all(r["from_store"] for r in again) and len(again) == 24),
        ("killed halfway, re-run: exactly 24 results, no duplicates",
         f"{len(set(final)) - 1} recipes + baseline in {len(final)} rows; {after_kill - 1} stored at the kill, "
         f"{sum(r['from_store'] for r in rerun)} served on the re-run ({rerun_seconds:.1f} s)",
         len(final) == len(set(final)) == 25 and len(rerun) == 24),
    ]
    rows = [{"recipe": r["recipe_hash"], "method": r["recipe"]["prune"]["method"],
             "ratio": r["recipe"]["prune"]["ratio"],
             "quant": (r["recipe"]["quant"] or {}).get("mode", "—"), "accuracy": r["accuracy"],
             "size_bytes": r["size_bytes"], "latency_ratio": 1 / r["speedup_vs_baseline"],
             "flops_ratio": r["flops_ratio_vs_baseline"]} for r in first]
    rows.sort(key=lambda r: (r["method"], r["ratio"], r["quant"]))
    payload = {
        "grid": GRID, "workers": os.cpu_count(), "first_seconds": round(first_seconds, 2),
        "again_seconds": round(again_seconds, 2), "stored_at_kill": after_kill - 1,
        "rerun_seconds": round(rerun_seconds, 2), "rerun_from_store": sum(r["from_store"] for r in rerun),
        "final_rows": len(final), "final_unique": len(set(final)),
        "load_average_before": load_before, "load_average_after": load_after,
        "targets": {label: passed for label, _, passed in checks}, "results": rows,
        "provenance": first[0]["provenance"] if first else {},
    }
    markdown = (
        f"### Sweep: 24 recipes on digits / cnn, {os.cpu_count()} worker processes\n\n"
        "Grid: prune method (channel-l2, l1-unstructured) × ratio (0.3, 0.5, 0.7, 0.9) × quantization (none, "
        "int8-static, fp16), default epochs (baseline 20, fine-tune 10). Each timing is the CLI as a new process. "
        f"Load average of the shared machine: {load_before[0]:.1f} before, {load_after[0]:.1f} after.\n\n"
        + markdown_table(["target", "measured", "result"], [[t, m, verdict(p)] for t, m, p in checks])
        + "\n#### The 24 results\n\n"
        + markdown_table(["method", "ratio", "quant", "test acc", "size (KB)", "latency ×", "FLOPs ×"],
                         [[r["method"], r["ratio"], r["quant"], f"{r['accuracy']:.2%}", f"{r['size_bytes'] / 1024:.1f}",
                           f"{r['latency_ratio']:.3f}", f"{r['flops_ratio']:.3f}"] for r in rows])
    )
    write("sweep", payload, markdown)


if __name__ == "__main__":
    main()
