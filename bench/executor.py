"""Executor target on digits / cnn (issue 22): four experiments submitted at once by four app sessions finish,
with 2 workers on this 2-core machine, in at most 0.65 × the time that 1 worker takes for the same four.

The four are what four sessions would ask of the Pruning page at once: channel-l2 at four ratios with the
page's default fine-tuning, on a baseline trained once beforehand (not timed). Each is queued in the store's
job queue by its own owner, exactly as the app's `start_job` does, and run by `python -m compression worker
--slots N` as `make run` starts it. Each round times both worker counts in fresh copies of the same store
(nothing served from a previous round), the order alternating between rounds; the ratio is per round, and
its min–max over the rounds is reported beside the median."""

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import ROOT, markdown_table, verdict, write

from compression import jobs, pipeline  # noqa: E402 - common puts the project on the path
from compression.recipe import PruneSpec, Recipe  # noqa: E402
from compression.store import Store  # noqa: E402

TARGET, ROUNDS = 0.65, 3
BASE = Recipe()
EXPERIMENTS = [replace(BASE, prune=PruneSpec("channel-l2", ratio)) for ratio in (0.3, 0.5, 0.7, 0.9)]


def worker(home: Path, slots: int) -> subprocess.Popen:
    """`python -m compression worker --slots SLOTS` on the store at `home`, once it serves it."""
    process = subprocess.Popen([sys.executable, "-m", "compression", "worker", "--slots", str(slots)], cwd=ROOT,
                               env={**os.environ, "COMPRESSION_HOME": str(home)}, stderr=subprocess.DEVNULL)
    queue = jobs.JobQueue(Store(home))
    while queue.workers() == 0:
        if process.poll() is not None:
            sys.exit(f"the worker exited with code {process.returncode}")
        time.sleep(0.1)
    return process


def four_sessions(seeded: Path, home: Path, slots: int) -> float:
    """Wall seconds from four sessions' submissions to the last experiment stored, with `slots` workers."""
    shutil.copytree(seeded, home)
    process = worker(home, slots)
    try:
        queue = jobs.JobQueue(Store(home))
        started = time.perf_counter()
        submitted = [queue.submit(r.hash, f"session {i}", "run_recipe", (r, str(home)), owner=f"session {i}")
                     for i, r in enumerate(EXPERIMENTS)]
        for job in submitted:
            job.wait(3600)
            if job.error:
                sys.exit(f"{job.label}: {job.error}")
        return time.perf_counter() - started
    finally:
        process.send_signal(signal.SIGINT)
        process.wait()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        seeded = Path(tmp) / "seeded"
        pipeline.run(BASE, Store(seeded))  # the baseline every experiment starts from: trained once, not timed
        rounds = []
        for n in range(ROUNDS):
            order = (1, 2) if n % 2 == 0 else (2, 1)
            seconds = {slots: four_sessions(seeded, Path(tmp) / f"round{n}-{slots}", slots) for slots in order}
            rounds.append({"one_worker_s": round(seconds[1], 1), "two_workers_s": round(seconds[2], 1),
                           "ratio": round(seconds[2] / seconds[1], 3), "order": list(order)})
            print(f"[executor] round {n + 1}: 1 worker {seconds[1]:.1f} s, 2 workers {seconds[2]:.1f} s, "
                  f"ratio {seconds[2] / seconds[1]:.3f}", file=sys.stderr)
    ratios = [r["ratio"] for r in rounds]
    median = statistics.median(ratios)
    passed = median <= TARGET
    payload = {"experiments": [r.to_dict() for r in EXPERIMENTS], "rounds": rounds, "median_ratio": median,
               "min_ratio": min(ratios), "max_ratio": max(ratios), "cores": os.cpu_count(),
               "target": {f"2 workers / 1 worker ≤ {TARGET}": passed}}
    markdown = (
        "### Executor: four app sessions' experiments at once, 1 worker against 2 (digits / cnn)\n\n"
        f"Four channel-l2 prunings (ratios 0.3, 0.5, 0.7, 0.9, default fine-tuning) queued at once by four owners "
        f"and run by `python -m compression worker --slots N`; {ROUNDS} rounds, both worker counts in each, order "
        f"alternating; {os.cpu_count()} cores.\n\n"
        + markdown_table(["round", "1 worker (s)", "2 workers (s)", "ratio"],
                         [[i + 1, r["one_worker_s"], r["two_workers_s"], f"{r['ratio']:.3f}"]
                          for i, r in enumerate(rounds)])
        + "\n" + markdown_table(["target", "measured", "result"],
                                [[f"2 workers ≤ {TARGET} × 1 worker", f"median {median:.3f} (min {min(ratios):.3f}, "
                                  f"max {max(ratios):.3f})", verdict(passed)]])
    )
    write("executor", payload, markdown)


if __name__ == "__main__":
    main()
