"""How long to train the width-0.25 student, chosen by 5-fold cross-validation inside the train + validation
pool of digits (1,437 images a seed; the test split is never read). The validation split alone (144 images)
ties at 0, ±1 image between KD and the control, too coarse to choose the student's epochs.

For each seed (0-2) and fold: a teacher (the baseline recipe: cnn, its default epochs) trained on the other
four folds; the KD student (T 4, α 0.7) and the label-only control (same init, batches and epochs) for each
length in EPOCH_SWEEP, trained on the same four folds; top-1 accuracy on the held-out fold, in torch. The
pool keeps the pipeline's normalisation (the train split's pixel mean and deviation: no labels cross folds).

The rule, fixed before this bench first ran: the student epochs of bench/distillation.py's judged KD rows
are the length with the highest cross-validated accuracy of the KD student (mean over seeds and folds; a
tie goes to the shorter). The KD gain is reported beside it but plays no part in the choice. The length
chosen (80) is DistillSpec's default, so the app and the CLI train that long too.

    OMP_NUM_THREADS=1 .venv/bin/python bench/distillation_epochs.py
        (writes bench/results/distillation_epochs.json / .md; two worker processes, one a core)
"""

import statistics
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import torch
from common import markdown_table, write
from distillation import BASE, EPOCH_SWEEP, SEEDS, WIDTH
from sklearn.model_selection import StratifiedKFold
from torch import nn

from compression import distill, pipeline
from compression.data import Split, Splits
from compression.recipe import DistillSpec
from compression.train import evaluate

FOLDS = 5
WORKERS = 2


def cv_fold(seed: int, fold: int) -> tuple[Splits, nn.Module]:
    """One fold of one seed's train + validation pool: the splits with `train` the other four folds and both
    `val` and `test` the held-out fold (so pipeline code measures on it), and the teacher (the baseline
    recipe) trained on those four folds."""
    torch.set_num_threads(1)
    splits = pipeline.load_splits(BASE.dataset, seed)
    x, y = torch.cat([splits.train.x, splits.val.x]), torch.cat([splits.train.y, splits.val.y])
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(x.numpy(), y.numpy())
    fit_index, held_index = [torch.from_numpy(i) for i in list(folds)[fold]]
    held = Split(x[held_index], y[held_index])
    splits = replace(splits, train=Split(x[fit_index], y[fit_index]), val=held, test=held)
    return splits, pipeline.train_baseline(replace(BASE, seed=seed), splits)


def fold_accuracies(seed: int, fold: int) -> dict:
    """Held-out accuracy of the KD student and the control at each length, on one fold of one seed."""
    splits, teacher = cv_fold(seed, fold)
    train, held = splits.train, splits.test
    row = {"seed": seed, "fold": fold, "held": len(held.y), "teacher": evaluate(teacher, held)}
    for epochs in EPOCH_SWEEP:
        spec = DistillSpec(width=WIDTH, epochs=epochs, patience=0)  # fixed lengths, as this bench compares
        students = distill.student_and_control(BASE.model, teacher, train, spec, seed, splits.input_shape,
                                               splits.num_classes)
        for kind, student in zip(("kd", "control"), students):
            row[f"{kind}_{epochs}"] = evaluate(student, held)
    print(f"seed {seed} fold {fold}: {row}", file=sys.stderr, flush=True)
    return row


def cv_rows(fold_row: Callable[[int, int], dict]) -> list[dict]:
    """`fold_row(seed, fold)` for every seed and fold, in WORKERS processes."""
    jobs = [(seed, fold) for seed in SEEDS for fold in range(FOLDS)]
    with ProcessPoolExecutor(WORKERS) as pool:
        return list(pool.map(fold_row, *zip(*jobs)))


def per_seed(rows: list[dict], key: str) -> list[float]:
    """The mean of `key` over each seed's folds, in percent."""
    return [100 * statistics.mean(r[key] for r in rows if r["seed"] == s) for s in SEEDS]


def best_length(rows: list[dict], lengths: tuple[int, ...], prefix: str) -> int:
    """The rule of the cross-validation benches: the length whose `prefix`_<length> accuracy is best on the
    mean over seeds and folds; the shorter on a tie."""
    return max(lengths, key=lambda e: (round(statistics.mean(r[f"{prefix}_{e}"] for r in rows), 6), -e))


def main() -> None:
    rows = cv_rows(fold_accuracies)
    table = []
    for epochs in EPOCH_SWEEP:
        kd, control = per_seed(rows, f"kd_{epochs}"), per_seed(rows, f"control_{epochs}")
        table.append({"epochs": epochs, "kd_percent": statistics.mean(kd), "control_percent": statistics.mean(control),
                      "kd_per_seed": kd, "control_per_seed": control,
                      "gain_per_seed_points": [a - b for a, b in zip(kd, control)]})
    choice = best_length(rows, EPOCH_SWEEP, "kd")  # the best KD student
    teacher = 100 * statistics.mean(r["teacher"] for r in rows)
    md = ["### Student epochs by 5-fold cross-validation (digits, train + validation pool, test split unread)\n",
          f"Width {WIDTH}, T {DistillSpec.temperature:g}, α {DistillSpec.alpha:g}; "
          f"seeds {', '.join(map(str, SEEDS))}, {FOLDS} folds each "
          f"({sum(r['held'] for r in rows) // len(SEEDS):,} held-out images a seed); teacher "
          f"(cnn, {BASE.epochs} epochs, trained on the other folds) {teacher:.2f} %.\n",
          markdown_table(
              ["student epochs", "KD student (CV)", "label-only control (CV)", "KD gain per seed (pts)",
               "KD gain (pts)"],
              [[t["epochs"], f"{t['kd_percent']:.2f}%", f"{t['control_percent']:.2f}%",
                " / ".join(f"{g:+.2f}" for g in t["gain_per_seed_points"]),
                f"{t['kd_percent'] - t['control_percent']:+.2f}"] for t in table]),
          f"Chosen by the rule (best KD student; the shorter on a tie): **{choice} epochs**.\n"]
    write("distillation_epochs", {"folds": FOLDS, "seeds": list(SEEDS), "teacher_percent": teacher,
                                  "chosen_epochs": choice, "table": table, "rows": rows}, "\n".join(md))


if __name__ == "__main__":
    main()
