"""How long the chain's pruned student is fine-tuned, chosen by 5-fold cross-validation inside the train +
validation pool of digits (the folds of bench/distillation_epochs.py; the test split is never read).

For each seed (0-2) and fold: the teacher (the baseline recipe) and the width-0.25 KD student (DistillSpec's
defaults), trained on the other four folds; the student pruned as bench/distillation.py's chain prunes it
(channel-l2, 0.5) and fine-tuned on the KD loss against the teacher for each length in FINETUNE_SWEEP; then
converted to int8-static exactly as the pipeline deploys it (calibrated on the four folds) and run in
onnxruntime on the held-out fold. The float accuracy in torch is reported beside it.

The rule, fixed before this bench first ran: bench/distillation.py's chain fine-tunes for the length with
the highest cross-validated int8 accuracy (mean over seeds and folds; a tie goes to the shorter). The
lengths were 80-640 at first, and 640, the longest, won: a best length on the grid's edge says the grid is
too short, so it was doubled to 1280; 1280 won, then 2560 won, so it is doubled again to 5120 (and so on
while the longest wins).

With --reuse, the lengths already in the committed bench/results/chain_finetune.json are taken from it and
only the new ones are trained: a fold's teacher, student and fine-tuning are deterministic (the 1280-epoch
run reproduced every earlier figure, every fold), and each reused fold is checked against its recomputed
teacher and student accuracies. Each finished fold is also appended to bench/results/chain_finetune.partial
.jsonl (not committed; removed when the bench writes its results), so --reuse resumes an interrupted run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/chain_finetune.py [--reuse]
        (writes bench/results/chain_finetune.json / .md; two worker processes, one a core)
"""

import copy
import functools
import json
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from common import RESULTS, markdown_table, read, write
from distillation import BASE, PRUNE, SEEDS, WIDTH
from distillation_epochs import FOLDS, best_length, cv_fold, cv_rows, per_seed

from compression import distill, pipeline
from compression.prune import prune_model
from compression.recipe import DistillSpec, QuantSpec
from compression.train import evaluate

FINETUNE_SWEEP = (80, 160, 320, 640, 1280, 2560, 5120)
QUANT = QuantSpec("int8-static")
PARTIAL = RESULTS / "chain_finetune.partial.jsonl"  # the folds an unfinished run has finished


def fold_accuracies(seed: int, fold: int, known: dict[tuple[int, int], dict]) -> dict:
    """Held-out accuracy of the teacher, the KD student, and the pruned student at each fine-tuning length
    (float in torch, int8 in onnxruntime), on one fold of one seed; lengths in this fold's `known` row are
    taken from it."""
    splits, teacher = cv_fold(seed, fold)
    spec = DistillSpec(width=WIDTH, epochs=80, patience=0)  # the fixed-length student of its committed run
    student = distill.trained_student(BASE.model, teacher, splits.train, spec, seed, splits.input_shape,
                                      splits.num_classes)
    row = {"seed": seed, "fold": fold, "held": len(splits.test.y), "teacher": evaluate(teacher, splits.test),
           "student": evaluate(student, splits.test)}
    kept = known.get((seed, fold), {})
    if kept and (kept["teacher"], kept["student"]) != (row["teacher"], row["student"]):
        raise RuntimeError(f"seed {seed} fold {fold} does not reproduce the committed row: cannot reuse it")
    for epochs in FINETUNE_SWEEP:
        if f"int8_{epochs}" in kept:
            row[f"float_{epochs}"], row[f"int8_{epochs}"] = kept[f"float_{epochs}"], kept[f"int8_{epochs}"]
            continue
        pruned = prune_model(copy.deepcopy(student), replace(PRUNE, finetune_epochs=epochs, patience=0), splits, seed,
                             teacher=teacher)
        with tempfile.TemporaryDirectory() as tmp:
            deployed = pipeline.deploy(pruned, QUANT, splits, Path(tmp))
        row[f"float_{epochs}"], row[f"int8_{epochs}"] = evaluate(pruned, splits.test), deployed.accuracy
    print(f"seed {seed} fold {fold}: {row}", file=sys.stderr, flush=True)
    with PARTIAL.open("a") as partial:  # one short line a fold: the two workers' appends do not interleave
        partial.write(json.dumps(row) + "\n")
    return row


def reusable_rows() -> dict[tuple[int, int], dict]:
    """Each fold's row from the committed results, or from an interrupted run's newer line for it."""
    rows = read("chain_finetune")["rows"]
    if PARTIAL.exists():
        rows += [json.loads(line) for line in PARTIAL.read_text().splitlines() if line]
    return {(r["seed"], r["fold"]): r for r in rows}


def main() -> None:
    reuse = "--reuse" in sys.argv
    if not reuse:
        PARTIAL.unlink(missing_ok=True)
    known = reusable_rows() if reuse else {}
    rows = cv_rows(functools.partial(fold_accuracies, known=known))
    teacher, student = (statistics.mean(per_seed(rows, key)) for key in ("teacher", "student"))
    table = [{"epochs": e, "int8_percent": statistics.mean(per_seed(rows, f"int8_{e}")),
              "float_percent": statistics.mean(per_seed(rows, f"float_{e}")),
              "int8_per_seed": per_seed(rows, f"int8_{e}")} for e in FINETUNE_SWEEP]
    choice = best_length(rows, FINETUNE_SWEEP, "int8")  # the best int8 accuracy
    md = ["### Chain fine-tuning length by 5-fold cross-validation (digits, train + validation pool, test split "
          "unread)\n",
          f"distil ({WIDTH}, 80 epochs) → {PRUNE.method} prune ({PRUNE.ratio}, fine-tuned on the "
          f"KD loss against the teacher) → {QUANT.mode}; seeds {', '.join(map(str, SEEDS))}, {FOLDS} folds each "
          f"({sum(r['held'] for r in rows) // len(SEEDS):,} held-out images a seed). Teacher (cnn, {BASE.epochs} "
          f"epochs, trained on the other folds) {teacher:.2f} %, KD student {student:.2f} %.\n",
          markdown_table(
              ["fine-tune epochs", "int8 in onnxruntime (CV)", "int8 per seed", "drop from the teacher (pts)",
               "float in torch (CV)"],
              [[t["epochs"], f"{t['int8_percent']:.2f}%", " / ".join(f"{a:.2f}" for a in t["int8_per_seed"]),
                f"{teacher - t['int8_percent']:+.2f}", f"{t['float_percent']:.2f}%"] for t in table]),
          f"Chosen by the rule (best int8 accuracy; the shorter on a tie): **{choice} epochs**.\n"]
    write("chain_finetune", {"folds": FOLDS, "seeds": list(SEEDS), "prune": PRUNE.method, "ratio": PRUNE.ratio,
                             "teacher_percent": teacher, "student_percent": student, "chosen_epochs": choice,
                             "table": table, "rows": rows}, "\n".join(md))
    PARTIAL.unlink()


if __name__ == "__main__":
    main()
