"""Baseline targets: a fresh digits/cnn baseline within 60 s at >= 97 % onnxruntime test accuracy, a
repeat served from the store within 3 s, and baseline p50 latency within 10 % over 3 processes.

Every number comes from the real CLI run as a new process, as a user would run it."""

import json
import os
import subprocess
import sys
import tempfile
import time

from common import ROOT, markdown_table, verdict, write

SPREAD_NOTE = (
    "Absolute latency on this 2-vCPU virtual machine (a Firecracker guest) shifts between processes and "
    "over minutes (seen: 0.21 to 0.32 ms at batch 32 for the same file, and whole processes running about "
    "1.4x slow at both batch sizes; at other times a dozen processes in a row agree within 5 %), while it "
    "holds within one process: several sessions timed round-robin in one process agree within 2 %, and so "
    "do consecutive 200-run blocks over 12 s. The shift comes from the host, not the protocol (it shows "
    "in pure onnxruntime without torch, pinned to either vCPU, with ASLR off), and longer timing does not "
    "remove it, so Compression Explorer compares models only as ratios to a baseline timed interleaved in "
    "the same process (`speedup_vs_baseline`), never across processes.")
COMMAND = [sys.executable, "-m", "compression", "baseline", "--dataset", "digits", "--model", "cnn", "--json"]
PRUNED = [sys.executable, "-m", "compression", "run", "--dataset", "digits", "--model", "cnn", "--json",
          "--prune-method", "channel-l2", "--prune-ratio", "0.5"]


def timed_cli(home: str, command: list[str] = COMMAND) -> tuple[float, dict]:
    """Wall seconds of one CLI process, and the Result it printed."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "COMPRESSION_HOME": home},
                          capture_output=True, text=True, check=True)
    return time.perf_counter() - started, json.loads(done.stdout)


def main() -> None:
    fresh_runs = []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as home:
            fresh_seconds, result = timed_cli(home)
            repeat_seconds, repeat = timed_cli(home)
            assert repeat["from_store"] and repeat["recipe_hash"] == result["recipe_hash"]
            _, pruned = timed_cli(home, PRUNED)
            fresh_runs.append({"fresh_seconds": round(fresh_seconds, 2), "repeat_seconds": round(repeat_seconds, 2),
                               "accuracy": result["accuracy"], "p50_ms": result["latency_ms"]["p50"],
                               "p50_single_ms": result["latency_ms_single"]["p50"],
                               "runs": result["latency_ms"]["runs"], "stage_seconds": result["stage_seconds"],
                               "pruned_latency_ratio": 1 / pruned["speedup_vs_baseline"]})
    p50s = [r["p50_ms"] for r in fresh_runs]
    spread = (max(p50s) - min(p50s)) / min(p50s)
    singles = [r["p50_single_ms"] for r in fresh_runs]
    spread_single = (max(singles) - min(singles)) / min(singles)
    ratios = [r["pruned_latency_ratio"] for r in fresh_runs]
    spread_ratio = (max(ratios) - min(ratios)) / min(ratios)
    targets = {
        "fresh baseline <= 60 s": max(r["fresh_seconds"] for r in fresh_runs) <= 60,
        "test accuracy (onnxruntime) >= 97 %": min(r["accuracy"] for r in fresh_runs) >= 0.97,
        "repeat from the store <= 3 s": max(r["repeat_seconds"] for r in fresh_runs) <= 3,
        "p50 spread over 3 processes < 10 %": spread < 0.10,
    }
    payload = {"command": " ".join(COMMAND[1:]), "processes": fresh_runs, "p50_spread": spread,
               "p50_single_spread": spread_single, "pruned_latency_ratio_spread": spread_ratio,
               "targets": targets, "provenance": result["provenance"]}
    rows = [[i + 1, r["fresh_seconds"], r["repeat_seconds"], f"{r['accuracy']:.2%}", f"{r['p50_ms']:.4f}",
             f"{r['p50_single_ms']:.4f}", r["runs"], f"{r['pruned_latency_ratio']:.3f}"]
            for i, r in enumerate(fresh_runs)]
    flags = ", ".join(k for k, v in result["provenance"]["cpu_flags"].items() if v)
    markdown = (
        "### Baseline: digits / cnn, `python -m compression baseline`\n\n"
        + markdown_table(["process", "fresh store (s)", "repeat (s)", "test acc (onnxruntime)",
                          "p50 batch 32 (ms)", "p50 batch 1 (ms)", "timed runs",
                          "channel-l2 0.5 latency ×"], rows)
        + f"\np50 spread over 3 processes: {spread:.1%} at batch 32, {spread_single:.1%} at batch 1; the latency "
          f"ratio of channel-l2 0.5 to the baseline, timed interleaved in each process, spreads {spread_ratio:.1%}. "
          f"onnxruntime CPU, 1 intra-op thread, spinning off; "
          f"CPU flags: {flags}.\n\n{SPREAD_NOTE}\n\n"
        + markdown_table(["target", "result"], [[k, verdict(v)] for k, v in targets.items()])
    )
    write("baseline", payload, markdown)


if __name__ == "__main__":
    main()
