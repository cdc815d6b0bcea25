"""bench/distillation.py's settings against the alternatives, on the validation split (onnxruntime), seeds 0-4,
never on the test split (test accuracy is listed beside for reference only).

- KD settings: temperature × α for the width-0.25 student at DistillSpec's default epochs; the KD gain over
  the label-only control (same student, init, batches and epochs) on validation, mean of the seeds.
- The chain distil (0.25) → channel prune (0.5) → int8-static: the three channel-pruning importances, each
  fine-tuned as bench/distillation.py does; the accuracy drop from the baseline on validation, mean of the seeds.

    .venv/bin/python bench/distillation_selection.py   (writes bench/results/distillation_selection.json / .md)
"""

import statistics
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from common import markdown_table, write
from distillation import BASE, PRUNE, WIDTH, chain

from compression import pipeline
from compression.catalog import PRUNE_METHODS
from compression.recipe import DistillSpec, Recipe
from compression.result import Result
from compression.store import Store

SEEDS = (0, 1, 2, 3, 4)
TEMPERATURES = (1.0, 2.0, 4.0, 8.0)
ALPHAS = (0.5, 0.7, 0.9)


def run(store: Store, recipe: Recipe) -> Result:
    print(recipe.technique, recipe.distill, recipe.prune, f"seed {recipe.seed}", file=sys.stderr, flush=True)
    return pipeline.run(recipe, store)


def kd_row(results: list[Result]) -> dict:
    d = results[0].distill
    gains = [100 * (r.val_accuracy - r.distill.control_val_accuracy) for r in results]
    return {"temperature": d.temperature, "alpha": d.alpha, "epochs": d.epochs,
            "val_gain_points": statistics.mean(gains), "val_gain_per_seed": gains,
            "test_gain_points": 100 * statistics.mean(r.distill.kd_gain for r in results)}


def chain_row(method: str, results: list[Result], bases: list[Result]) -> dict:
    return {"method": method,
            "val_drop_points": 100 * statistics.mean(b.val_accuracy - r.val_accuracy for r, b in zip(results, bases)),
            "val_drop_per_seed": [100 * (b.val_accuracy - r.val_accuracy) for r, b in zip(results, bases)],
            "test_drop_points": 100 * statistics.mean(b.accuracy - r.accuracy for r, b in zip(results, bases)),
            "size_bytes": [r.size_bytes for r in results]}


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        store = Store(Path(home))
        bases = [run(store, replace(BASE, seed=seed)) for seed in SEEDS]
        kd = [kd_row([run(store, replace(BASE, seed=seed, distill=DistillSpec(width=WIDTH, temperature=t, alpha=a)))
                      for seed in SEEDS]) for t in TEMPERATURES for a in ALPHAS]
        chains = [chain_row(m, [run(store, chain(replace(PRUNE, method=m), seed)) for seed in SEEDS], bases)
                  for m in PRUNE_METHODS.where(structured=True)]
    default = next(r for r in kd if (r["temperature"], r["alpha"]) == (DistillSpec.temperature, DistillSpec.alpha))
    best = max(kd, key=lambda r: r["val_gain_points"])
    val_images = len(pipeline.load_splits(BASE.dataset, SEEDS[0]).val.y)
    payload = {"seeds": SEEDS, "width": WIDTH, "kd": kd, "chain": chains, "chain_student_epochs": DistillSpec.epochs,
               "chain_prune": asdict(PRUNE), "validation_images": val_images, "default": default,
               "best_on_validation": best}
    markdown = (
        "### Distillation settings on the validation split (onnxruntime, "
        f"seeds {SEEDS[0]}–{SEEDS[-1]})\n\n"
        f"#### KD gain over the label-only control, width {WIDTH}, {default['epochs']} epochs\n\n"
        + markdown_table(["T", "α", "val gain (pts, mean)", "val gain per seed", "test gain (pts, reference)"],
                         [[r["temperature"], r["alpha"], f"{r['val_gain_points']:+.2f}",
                           " / ".join(f"{g:+.2f}" for g in r["val_gain_per_seed"]), f"{r['test_gain_points']:+.2f}"]
                          for r in kd])
        + f"\nBest on validation: T = {best['temperature']:g}, α = {best['alpha']:g} ({best['val_gain_points']:+.2f} "
          f"pts); the default T = {default['temperature']:g}, α = {default['alpha']:g}: "
          f"{default['val_gain_points']:+.2f} pts. One validation image is {100 / val_images:.2f} pts of a seed, "
          f"{100 / val_images / len(SEEDS):.2f} pts of the mean.\n"
        + f"\n#### distil ({WIDTH}, {DistillSpec.epochs} epochs) → channel prune (0.5, {PRUNE.finetune_epochs} "
          "fine-tune epochs on the KD loss) → int8-static: the importance\n\n"
        + markdown_table(["importance", "val drop (pts, mean)", "val drop per seed", "test drop (pts, reference)"],
                         [[r["method"], f"{r['val_drop_points']:+.2f}",
                           " / ".join(f"{d:+.2f}" for d in r["val_drop_per_seed"]), f"{r['test_drop_points']:+.2f}"]
                          for r in chains])
    )
    write("distillation_selection", payload, markdown)


if __name__ == "__main__":
    main()
