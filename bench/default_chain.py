"""The default chain as a user gets it: distil → prune 0.5 → int8-static on digits with every setting at its
default (Recipe(dataset="digits") with DistillSpec(), PruneSpec("channel-l2", 0.5), QuantSpec("int8-static")),
run through compression.pipeline as the CLI runs it, on seeds 0-4 (each its own split, baseline and student).
Target (issue 24): at most 1 point of test accuracy lost against the baseline (int8 in onnxruntime).

How the defaults were chosen (--select, run first; the test split is never printed or used there): the
plateau patience (shared by distillation and pruning's fine-tuning) and whether pruning fine-tunes on the KD
loss against the baseline, over CANDIDATES, each chain on seeds 0-4 with the epoch cap CAP. The rule, fixed
before it ran: the highest mean validation accuracy of the final int8 model in onnxruntime (5 × 144 images);
a tie goes to the smaller patience, then to labels-only fine-tuning. The validation split also chooses each
training's stopping epoch, so its figures are optimistic — for every candidate alike. The chosen settings are
recipe.py's defaults; the default run then reports the test figures once. --select also checks the same
patience on QAT (10 epochs at most, as the page's slider offers up to 20; 3-bit simulated and int8-static on
the baseline, seeds 0-2) against the fixed-length one-cycle QAT, on validation.

    OMP_NUM_THREADS=1 .venv/bin/python bench/default_chain.py --select   (writes results/default_chain_selection.*)
    OMP_NUM_THREADS=1 .venv/bin/python bench/default_chain.py            (writes results/default_chain.*)
Two worker processes, one a core; stores under $BENCH_STORE (default a temporary folder).
"""

import os
import statistics
import sys
import tempfile
from dataclasses import replace
from multiprocessing import Pool
from pathlib import Path

from common import markdown_table, verdict, write

from compression import pipeline
from compression.recipe import DistillSpec, PruneSpec, QuantSpec, Recipe
from compression.result import Result
from compression.store import Store

SEEDS = (0, 1, 2, 3, 4)
CAP = 1280
PATIENCES = (25, 50, 100)
CANDIDATES = [(patience, kd) for patience in PATIENCES for kd in (False, True)]
TARGET_POINTS = 1.0
QAT_CHECK = (QuantSpec("fake", bits=3, qat_epochs=10), QuantSpec("int8-static", qat_epochs=10))
QAT_SEEDS = (0, 1, 2)


def default_chain(seed: int) -> Recipe:
    """The chain with every setting at its default, as the CLI builds it."""
    return Recipe(dataset="digits", seed=seed, distill=DistillSpec(), prune=PruneSpec("channel-l2", 0.5),
                  quant=QuantSpec("int8-static"))


def candidate_chain(seed: int, patience: int, kd: bool) -> Recipe:
    return Recipe(dataset="digits", seed=seed, distill=DistillSpec(epochs=CAP, patience=patience),
                  prune=PruneSpec("channel-l2", 0.5, finetune_epochs=CAP, patience=patience, kd=kd),
                  quant=QuantSpec("int8-static"))


def run(recipes: list[Recipe]) -> list[dict]:
    """Each recipe's result in the bench store, in order (a later one reuses an earlier one's stages)."""
    store = Store(Path(os.environ["BENCH_STORE"]))
    rows = []
    for recipe in recipes:
        result = pipeline.run(recipe, store)
        baseline = pipeline.run(recipe.baseline(), store)
        print(recipe.seed, [s.stopped_text for s in result.stages], file=sys.stderr, flush=True)
        rows.append(row(recipe, result, baseline))
    return rows


def row(recipe: Recipe, result: Result, baseline: Result) -> dict:
    by_stage = {s.stage: s for s in result.stages}
    return {"seed": recipe.seed, "recipe_hash": result.recipe_hash,
            "baseline_test": baseline.accuracy, "baseline_val": baseline.val_accuracy,
            "chain_test": result.accuracy, "chain_val": result.val_accuracy,
            "distill_test": by_stage["distill"].accuracy, "prune_test": by_stage["prune"].accuracy,
            "seconds": sum(s.seconds for s in result.stages),
            **{f"{stage}_{k}": getattr(by_stage[stage], k) for stage in ("distill", "prune")
               for k in ("epochs_run", "best_epoch", "epochs_cap")}}


def qat_val(recipes: list[Recipe]) -> list[float]:
    """Each QAT recipe's validation accuracy (the test split is not read)."""
    store = Store(Path(os.environ["BENCH_STORE"]))
    return [pipeline.run(recipe, store).val_accuracy for recipe in recipes]


def qat_rows(pool: Pool) -> list[dict]:
    """Validation accuracy of QAT with the chosen patience against fixed-length QAT, per format and seed."""
    specs = [(q, patience) for q in QAT_CHECK for patience in (0, QuantSpec.qat_patience)]
    vals = pool.map(qat_val, [[Recipe(dataset="digits", seed=seed, quant=replace(q, qat_patience=patience))
                                for seed in QAT_SEEDS] for q, patience in specs])
    return [{"mode": q.mode, "bits": q.bits, "qat_epochs": q.qat_epochs, "patience": patience,
             "val_per_seed": [100 * v for v in val], "val_percent": 100 * statistics.mean(val)}
            for (q, patience), val in zip(specs, vals)]


def select() -> None:
    units = [[candidate_chain(seed, patience, kd) for kd in (False, True)] for patience in PATIENCES for seed in SEEDS]
    with Pool(2) as pool:
        done = [r for rows in pool.map(run, units) for r in rows]
        qat = qat_rows(pool)
    table = []
    for patience, kd in CANDIDATES:
        rows = [r for r in done if r["recipe_hash"] == candidate_chain(r["seed"], patience, kd).hash]
        table.append({"patience": patience, "kd": kd, "val_percent": 100 * statistics.mean(r["chain_val"] for r in rows),
                      "val_per_seed": [100 * r["chain_val"] for r in rows],
                      "baseline_val_percent": 100 * statistics.mean(r["baseline_val"] for r in rows),
                      "distill_epochs": [r["distill_epochs_run"] for r in rows],
                      "prune_epochs": [r["prune_epochs_run"] for r in rows],
                      "seconds": statistics.mean(r["seconds"] for r in rows)})
    best = max(table, key=lambda t: (round(t["val_percent"], 6), -t["patience"], not t["kd"]))
    md = ["### Default chain settings by validation (digits, seeds 0-4, test split unread)\n",
          f"distil (width 0.25) → channel-l2 0.5 → int8-static, each training stopped on its validation plateau "
          f"with at most {CAP} epochs; validation accuracy of the final int8 model in onnxruntime (5 × 144 images; "
          f"the baselines' mean {table[0]['baseline_val_percent']:.2f} %).\n",
          markdown_table(["patience", "prune fine-tunes on", "int8 val (mean)", "per seed", "distill epochs run",
                          "fine-tune epochs run", "seconds a chain (mean)"],
                         [[t["patience"], "KD loss" if t["kd"] else "labels", f"{t['val_percent']:.2f}%",
                           " / ".join(f"{v:.2f}" for v in t["val_per_seed"]),
                           " / ".join(map(str, t["distill_epochs"])), " / ".join(map(str, t["prune_epochs"])),
                           f"{t['seconds']:.0f}"] for t in table]),
          f"Chosen by the rule (best mean validation accuracy; a tie to the smaller patience, then to labels): "
          f"**patience {best['patience']}, {'KD' if best['kd'] else 'labels-only'} fine-tuning**.\n",
          f"#### QAT on the baseline: fixed length (one-cycle) vs stopped on the plateau (validation, seeds "
          f"{', '.join(map(str, QAT_SEEDS))})\n",
          markdown_table(["format", "QAT epochs", "patience", "val (mean)", "per seed"],
                         [[f"{q['mode']}{' ' + str(q['bits']) + '-bit' if q['mode'] == 'fake' else ''}",
                           q["qat_epochs"] if not q["patience"] else f"≤ {q['qat_epochs']}",
                           q["patience"] or "0 (fixed)", f"{q['val_percent']:.2f}%",
                           " / ".join(f"{v:.2f}" for v in q["val_per_seed"])] for q in qat])]
    write("default_chain_selection", {"cap": CAP, "seeds": list(SEEDS), "table": table, "chosen": best, "qat": qat,
                                      "rows": [{k: v for k, v in r.items() if "test" not in k} for r in done]},
          "\n".join(md))


def report() -> None:
    with Pool(2) as pool:
        rows = [r for rows in pool.map(run, [[default_chain(seed)] for seed in SEEDS]) for r in rows]
    drops = [100 * (r["baseline_test"] - r["chain_test"]) for r in rows]
    mean_drop = statistics.mean(drops)
    spec = default_chain(0)
    md = ["### The default chain on seeds 0-4 (digits, test accuracy in onnxruntime)\n",
          f"`Recipe(dataset=\"digits\")` with `DistillSpec()`, `PruneSpec(\"channel-l2\", 0.5)`, "
          f"`QuantSpec(\"int8-static\")` at their defaults: student width {spec.distill.width}, at most "
          f"{spec.distill.epochs} epochs; fine-tuning at most {spec.prune.finetune_epochs} epochs"
          f"{' on the KD loss' if spec.prune.kd else ' on the labels'}; both stopped after "
          f"{spec.prune.patience} epochs without a better validation loss, the best epoch kept.\n",
          markdown_table(["target", "measured", "result"],
                         [[f"drop ≤ {TARGET_POINTS:.1f} pt (mean of seeds 0-4)", f"{mean_drop:+.2f} pts",
                           verdict(mean_drop <= TARGET_POINTS)],
                          [f"drop ≤ {TARGET_POINTS:.1f} pt, seed 0 (the default seed)", f"{drops[0]:+.2f} pts",
                           verdict(drops[0] <= TARGET_POINTS)]]),
          markdown_table(["seed", "baseline", "distil", "prune", "int8 (chain)", "drop (pts)", "int8 val",
                          "baseline val", "distil epochs (best)", "fine-tune epochs (best)", "seconds"],
                         [[r["seed"], f"{r['baseline_test']:.2%}", f"{r['distill_test']:.2%}",
                           f"{r['prune_test']:.2%}", f"{r['chain_test']:.2%}", f"{d:+.2f}", f"{r['chain_val']:.2%}",
                           f"{r['baseline_val']:.2%}", f"{r['distill_epochs_run']} ({r['distill_best_epoch']})",
                           f"{r['prune_epochs_run']} ({r['prune_best_epoch']})", f"{r['seconds']:.0f}"]
                          for r, d in zip(rows, drops)]),
          f"Mean drop {mean_drop:+.2f} pts; {sum(d <= TARGET_POINTS for d in drops)} of {len(drops)} seeds within "
          f"{TARGET_POINTS:.1f} pt.\n"]
    write("default_chain", {"seeds": list(SEEDS), "mean_drop_points": mean_drop, "drops_points": drops,
                            "recipe": default_chain(0).to_dict(), "rows": rows}, "\n".join(md))


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        os.environ.setdefault("BENCH_STORE", home)
        select() if "--select" in sys.argv else report()


if __name__ == "__main__":
    main()
