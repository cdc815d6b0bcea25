"""A data set larger than memory: a generated folder of 20,000 JPEG images (10 classes) loaded at 224 × 224, as
float32 splits 12 GB, is decoded once into the on-disk uint8 pixel cache and streamed from it. Target: the peak
resident memory of the loading process (and of any DataLoader worker it starts) stays under 3 GB while it
decodes the folder, computes the train statistics and reads every train image once through the DataLoader; a
second load, from the cache, is timed too.

Each load runs in a fresh process, so its ru_maxrss is its own peak."""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from common import ROOT, markdown_table, verdict, write

IMAGES, CLASSES, SIDE, LIMIT_GB = 20_000, 10, 224, 3.0

# Run in a fresh process: load the folder, then read every train image once in DataLoader batches and every test
# image once in slices, as fit() and evaluate() do; print the peak RSS of the process and of its largest child.
LOAD = """
import json, resource, sys, time, torch
from compression.data import load_dataset
started = time.perf_counter()
splits = load_dataset("imagefolder:" + sys.argv[1], image_size=224)
loaded = time.perf_counter() - started
seen = 0
for x, idx in splits.train.x.batches(torch.randperm(len(splits.train.y)), 64):
    seen += len(idx)
for i in range(0, len(splits.test.x), 512):
    seen += len(splits.test.x[i:i + 512])
print(json.dumps({"load_s": loaded, "pass_s": time.perf_counter() - started - loaded, "images_read": seen,
                  "streamed": type(splits.train.x).__name__ == "StreamedImages",
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def image_folder(root: Path) -> Path:
    """IMAGES JPEGs of smooth random colour fields at SIDE × SIDE, spread over CLASSES folders."""
    rng = np.random.default_rng(0)
    for i in range(IMAGES):
        folder = root / f"class{i % CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        field = rng.random(3) * 255 + rng.normal(0, 30, (8, 8, 3))
        image = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8)).resize((SIDE, SIDE), Image.BILINEAR)
        image.save(folder / f"{i}.jpg", quality=85)
    return root


def load(folder: Path, home: Path) -> dict:
    """The figures of one loading process (see LOAD)."""
    done = subprocess.run([sys.executable, "-c", LOAD, str(folder)], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "COMPRESSION_HOME": str(home)})
    if done.returncode != 0:
        raise SystemExit(f"load failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        folder = image_folder(Path(tmp) / "images")
        generated = time.perf_counter() - started
        files_mb = sum(f.stat().st_size for f in folder.rglob("*.jpg")) / 2**20
        first, second = load(folder, Path(tmp) / "home"), load(folder, Path(tmp) / "home")
        cache_mb = sum(f.stat().st_size for f in (Path(tmp) / "home" / "cache").rglob("*.npy")) / 2**20
    peak_gb = max(run[key] for run in (first, second) for key in ("peak_rss_mb", "worker_peak_rss_mb")) / 1024
    payload = {"images": IMAGES, "side": SIDE, "jpeg_mb": round(files_mb, 1), "cache_mb": round(cache_mb, 1),
               "float32_splits_gb": round(IMAGES * 3 * SIDE * SIDE * 4 / 2**30, 2), "generate_s": round(generated, 1),
               "first": first, "second": second, "peak_gb": round(peak_gb, 2), "limit_gb": LIMIT_GB,
               "pass": peak_gb < LIMIT_GB and first["streamed"]}
    rows = [[name, run["streamed"], f"{run['load_s']:.1f}", f"{run['pass_s']:.1f}", run["images_read"],
             f"{run['peak_rss_mb']:.0f}", f"{run['worker_peak_rss_mb']:.0f}"]
            for name, run in (("first (decodes)", first), ("second (cache)", second))]
    markdown = (f"# Streaming a data set larger than memory\n\n{IMAGES} JPEGs ({files_mb:.0f} MB) at {SIDE}×{SIDE}: "
                f"{payload['float32_splits_gb']} GB as float32 splits, {cache_mb:.0f} MB as the uint8 cache.\n\n"
                + markdown_table(["load", "streamed", "load s", "one pass s", "images read", "peak RSS MB",
                                  "worker peak RSS MB"], rows)
                + f"\nPeak {peak_gb:.2f} GB, target < {LIMIT_GB} GB: **{verdict(payload['pass'])}**\n")
    write("streaming", payload, markdown)


if __name__ == "__main__":
    main()
