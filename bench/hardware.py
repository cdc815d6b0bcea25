"""Hardware-aware INT8 (issue 23): int8-static against fp32 with the runtime-aware layout (auto) beside
onnxruntime's plain conversion, each run through the pipeline with its defaults, then re-timed here.

Every latency figure is a ratio of the calling thread's CPU-time p50 (one intra-op thread), the int8 file
timed interleaved with its fp32 baseline in one process, over 5 rounds: the median with min–max. Targets:

- cnn at 3x32x32 (an offline colour image folder: the digits upscaled and tinted), batch 32: <= 0.45;
- cnn on digits, batch 32: <= 0.55;
- resnet and mobilenet at 3x32x32, batch 1: reported;
- accuracy drop (test split, onnxruntime) <= 0.5 pt for each.
"""

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import markdown_table, verdict, write
from PIL import Image
from sklearn.datasets import load_digits

from compression import pipeline
from compression.measure import time_interleaved
from compression.recipe import QuantSpec, Recipe
from compression.result import Result
from compression.store import Store

ROUNDS = 5
MAX_DROP_POINTS = 0.5
CASES = [  # (name, model, colour folder?, batch, epochs, target ratio or None)
    ("cnn 3x32x32", "cnn", True, 32, 20, 0.45),
    ("cnn digits", "cnn", False, 32, 20, 0.55),
    ("resnet 3x32x32", "resnet", True, 1, 10, None),
    ("mobilenet 3x32x32", "mobilenet", True, 1, 10, None),
]


def colour_folder(root: Path) -> Path:
    """The 1,797 digits as 32x32 RGB images, each tinted with a random colour, in class folders."""
    digits = load_digits()
    rng = np.random.default_rng(0)
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        gray = Image.fromarray((image * 255 / 16).astype(np.uint8)).resize((32, 32), Image.BILINEAR)
        tint = rng.uniform(0.3, 1.0, 3)
        rgb = (np.asarray(gray, np.float32)[..., None] * tint).astype(np.uint8)
        folder = root / f"digit{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(folder / f"{i}.png")
    return root


def cpu_ratios(store: Store, result: Result, base: Result, shape: tuple[int, ...], batch: int) -> list[float]:
    """int8 / fp32 thread-CPU-time p50 in each of ROUNDS interleaved timings."""
    paths = [store.path(result, pipeline.ONNX), store.path(base, pipeline.ONNX)]
    ratios = []
    for _ in range(ROUNDS):
        int8, fp32 = time_interleaved(paths, shape, batch, threads=1)
        ratios.append(int8.cpu_p50 / fp32.cpu_p50)
    return ratios


def case(store: Store, dataset: str, name: str, model: str, batch: int, epochs: int,
         target: float | None) -> list[dict]:
    base_recipe = Recipe(dataset=dataset, model=model, epochs=epochs, batch=batch)
    base = pipeline.run(base_recipe, store)
    shape = tuple(pipeline.splits_for(base_recipe).input_shape)
    rows = []
    for layout in ("plain", "auto"):
        print(f"{name}: {layout}", file=sys.stderr, flush=True)
        result = pipeline.run(Recipe(dataset=dataset, model=model, epochs=epochs, batch=batch,
                                     quant=QuantSpec("int8-static", layout=layout)), store)
        ratios = cpu_ratios(store, result, base, shape, batch)
        choice = result.quant.layout_choice
        drop = 100 * (base.accuracy - result.accuracy)
        median = float(np.median(ratios))
        rows.append({"case": name, "batch": batch, "layout asked": layout, "layout": choice.layout,
                     "reason": choice.reason, "ratio_median": median, "ratio_min": min(ratios), "ratio_max": max(ratios),
                     "rounds": ratios, "fp32_accuracy": base.accuracy, "int8_accuracy": result.accuracy,
                     "drop_points": drop, "target": target,
                     "latency_pass": None if target is None else median <= target,
                     "accuracy_pass": drop <= MAX_DROP_POINTS})
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["COMPRESSION_HOME"] = str(Path(tmp) / "home")  # the store, pixel cache and timing lock
        store = Store()
        folder = f"imagefolder:{colour_folder(Path(tmp) / 'colour')}"
        rows = [row for name, model, colour, batch, epochs, target in CASES
                for row in case(store, folder if colour else "digits", name, model, batch, epochs, target)]
    table = markdown_table(
        ["case", "batch", "layout asked → kept", "int8 / fp32 CPU time, median (min–max)", "target",
         "accuracy fp32 → int8 (drop)", "verdict"],
        [[r["case"], r["batch"], f"{r['layout asked']} → {r['layout']}",
          f"{r['ratio_median']:.3f} ({r['ratio_min']:.3f}–{r['ratio_max']:.3f})",
          "—" if r["target"] is None else f"≤ {r['target']}",
          f"{r['fp32_accuracy']:.2%} → {r['int8_accuracy']:.2%} ({r['drop_points']:+.2f} pt)",
          ("latency " + verdict(r["latency_pass"]) + ", " if r["target"] is not None else "")
          + "accuracy " + verdict(r["accuracy_pass"])]
         for r in rows])
    reasons = "\n".join(f"- {r['case']}, {r['layout asked']}: {r['reason']}" for r in rows)
    write("hardware", {"rounds": ROUNDS, "max_drop_points": MAX_DROP_POINTS, "rows": rows},
          f"# Hardware-aware INT8 (bench/hardware.py)\n\nint8-static over fp32, thread CPU time p50 ratio, "
          f"interleaved, median of {ROUNDS} rounds (min–max); accuracy on the test split in onnxruntime.\n\n"
          f"{table}\nWhy each layout was kept:\n\n{reasons}\n")


if __name__ == "__main__":
    main()
