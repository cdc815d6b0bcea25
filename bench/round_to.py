"""round_to auto vs round_to 1 (issue 23): channel-l2 at ratios 0.1 … 0.9 on the cnn, FP32 and int8-static,
latency as a ratio to the unpruned baseline (thread CPU time p50 at batch 32, 1 thread, timed interleaved with
the baseline in the same process, one run each: as the pipeline measures every Result).

Targets (fixed before the run): with round_to auto, latency is monotone non-increasing in ratio and <= 1.0x at
every ratio, FP32 and INT8. Strictly, and within a tolerance of 0.03 (consecutive ratios often keep the very
same architecture, whose two timings differ by noise alone). The staircase is measured on the float layers;
the int8 rows use the same counts.

Parts: `digits` (8x8 grayscale, the default baseline, 10 fine-tune epochs) and, with `32`, the cnn at
3x32x32 on digits written as an image folder (resized to 32x32 RGB by the project's imagefolder loader; 5 baseline
epochs and 2 fine-tune epochs: latency is the question, not accuracy).
"""

import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from common import markdown_table, verdict, write

from compression import pipeline
from compression.catalog import ROUND_TO_AUTO
from compression.recipe import PruneSpec, QuantSpec, Recipe
from compression.result import Result
from compression.store import Store

RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
ROUNDINGS = (1, ROUND_TO_AUTO)
FORMATS = (None, "int8-static")
TOLERANCE = 0.03


def digits_folder(root: Path) -> Path:
    """scikit-learn's digits as an image folder (one PNG per image, a folder per class)."""
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 255 / 16).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def row(result: Result) -> dict:
    spec = result.recipe["prune"]
    return {"ratio": spec["ratio"], "round_to": "auto" if spec["round_to"] == ROUND_TO_AUTO else spec["round_to"],
            "format": (result.recipe.get("quant") or {}).get("mode", "fp32"),
            "latency_ratio": 1 / result.speedup_vs_baseline, "clock": result.latency_ms.clock,
            "cpu_p50_ms": result.latency_ms.cpu_p50, "baseline_cpu_p50_ms": result.baseline_latency_ms.cpu_p50,
            "accuracy": result.accuracy, "flops_ratio": result.flops_ratio_vs_baseline,
            "kept": [layer.shape[0] for layer in result.layers[:-1]],
            "asked": [layer.channels_asked for layer in result.layers[:-1]], "recipe_hash": result.recipe_hash}


def monotone(values: list[float], tolerance: float = 0.0) -> bool:
    return all(b <= a + tolerance for a, b in zip(values, values[1:]))


def part(name: str, base: Recipe, finetune: int, store: Store) -> tuple[dict, str]:
    baseline = pipeline.run(base, store)
    rows = []
    for fmt in FORMATS:
        for rounding in ROUNDINGS:
            for ratio in RATIOS:
                spec = PruneSpec("channel-l2", ratio, finetune_epochs=finetune, round_to=rounding)
                recipe = replace(base, prune=spec, quant=QuantSpec(fmt) if fmt else None)
                print(f"[{name}] {fmt or 'fp32'} round_to {rounding or 'auto'} ratio {ratio}", file=sys.stderr,
                      flush=True)
                rows.append(row(pipeline.run(recipe, store)))
    checks = []
    for fmt in ("fp32", *[f for f in FORMATS if f]):
        for rounding in ("auto", 1):
            latency = [r["latency_ratio"] for r in rows if r["format"] == fmt and r["round_to"] == rounding]
            checks.append({"format": fmt, "round_to": rounding, "max_latency_ratio": max(latency),
                           "at_most_1": max(latency) <= 1.0, "monotone": monotone(latency),
                           "monotone_within_tolerance": monotone(latency, TOLERANCE),
                           "at_most_1_within_tolerance": max(latency) <= 1.0 + TOLERANCE})
    table = markdown_table(
        ["format", "round to", *[str(r) for r in RATIOS]],
        [[fmt, rounding, *[f"{r['latency_ratio']:.3f}" for r in rows
                            if r["format"] == fmt and r["round_to"] == rounding]]
         for fmt in ("fp32", *[f for f in FORMATS if f]) for rounding in (1, "auto")])
    kept = markdown_table(
        ["ratio", "asked (round to 1)", "kept (auto)", "FLOPs × auto", "test acc auto (fp32)"],
        [[r["ratio"], "/".join(map(str, r["asked"])), "/".join(map(str, r["kept"])), f"{r['flops_ratio']:.3f}",
          f"{r['accuracy']:.2%}"] for r in rows if r["format"] == "fp32" and r["round_to"] == "auto"])
    verdicts = markdown_table(
        ["format", "round to", "max latency ×", "≤ 1.0 everywhere", "monotone", f"monotone within {TOLERANCE}"],
        [[c["format"], c["round_to"], f"{c['max_latency_ratio']:.3f}",
          verdict(c["at_most_1"]) + ("" if c["round_to"] == "auto" else " (reference)"),
          verdict(c["monotone"]) + ("" if c["round_to"] == "auto" else " (reference)"),
          verdict(c["monotone_within_tolerance"])] for c in checks])
    markdown = (f"#### {name} (baseline {baseline.accuracy:.2%}, CPU p50 {baseline.latency_ms.cpu_p50:.4f} ms at "
                f"batch {base.batch})\n\nLatency × the unpruned baseline (thread CPU time p50, batch {base.batch}, "
                f"1 thread, interleaved, one run each), channel-l2:\n\n{table}\n{verdicts}\n"
                f"Kept output channels per layer (conv / conv / fc) with auto:\n\n{kept}\n")
    payload = {"baseline": {"recipe_hash": baseline.recipe_hash, "accuracy": baseline.accuracy,
                            "latency_ms": asdict(baseline.latency_ms)},
               "finetune_epochs": finetune, "rows": rows, "checks": checks,
               "provenance": asdict(baseline.provenance)}
    return payload, markdown


def main(parts: list[str]) -> None:
    payload, markdown = {"ratios": list(RATIOS), "tolerance": TOLERANCE}, "### round_to auto vs round_to 1\n\n"
    with tempfile.TemporaryDirectory() as home:
        store = Store(Path(home))
        if "digits" in parts:
            payload["digits"], text = part("digits / cnn", Recipe(dataset="digits", model="cnn"), 10, store)
            markdown += text
            write("round_to", payload, markdown)  # a later part that fails keeps this one
        if "32" in parts:
            folder = digits_folder(Path(home) / "digits32")
            payload["digits_3x32x32"], text = part(
                "digits as 3x32x32 images / cnn", Recipe(dataset=f"imagefolder:{folder}", model="cnn", epochs=5),
                2, store)
            markdown += "\n" + text
            write("round_to", payload, markdown)


if __name__ == "__main__":
    main(sys.argv[1:] or ["digits"])
