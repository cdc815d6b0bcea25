"""Knowledge distillation (Hinton et al., 2015): a narrow student learns from a trained teacher's softened
outputs; a label-only control with the same init, batches and epochs shows what the teacher adds."""

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from compression.data import SampleImages, Split, Splits, images_at
from compression.models import InputShape, build_model
from compression.recipe import DistillSpec
from compression.result import TrainingCurve
from compression.train import LossFn, Plateau, Progress, ProgressFn, fit, predict, seed_everything, silent


# Why the Distillation page has no classroom preset (settings on which KD visibly beats its control on digits): the
# search of bench/distillation_classroom.py on the validation split found none (results/distillation_classroom.md).
CLASSROOM_NOTE = (
    "No classroom preset: on digits, no setting tried puts the KD student visibly ahead of the label-only control. "
    "Of 36 settings searched on the validation split (width 0.125 / 0.25 × 10 / 20 / 40 epochs × T 1 / 2 / 4 × "
    "α 0.5 / 0.9, seeds 0–2), the best — width 0.25, 20 epochs, T = 2, α = 0.5 — is ahead by one validation image a "
    "seed (+0.69 pts), and on the test split behind on 2 of 3 seeds (−1.11 / +0.28 / −1.39 pts); a first run at 2 "
    "and 5 epochs left KD up to 40 pts behind, or both students near chance. The control already reaches about "
    "97 %: digits leaves a teacher little to add (bench/results/distillation_classroom.md).")


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, temperature: float,
            alpha: float) -> Tensor:
    """α · T² · KL(softmax(teacher / T) ‖ softmax(student / T)), averaged over the batch, plus
    (1 − α) · cross-entropy of the student against the labels. T² keeps the soft gradients' scale
    independent of T."""
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                    F.log_softmax(teacher_logits / temperature, dim=1), reduction="batchmean", log_target=True)
    return alpha * temperature ** 2 * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def soften(logits: Tensor, temperature: float) -> Tensor:
    """Class probabilities from logits, softened by `temperature`: softmax(logits / T)."""
    return torch.softmax(logits / temperature, dim=1)


@dataclass(frozen=True)
class SoftTargets:
    """A teacher's class probabilities for some images at temperature T, beside the same at T = 1."""

    temperature: float
    probabilities: Tensor  # (images, classes) at T
    at_one: Tensor         # (images, classes) at T = 1

    @staticmethod
    def _off_top(probabilities: Tensor) -> float:
        return float(1 - probabilities.max(dim=1).values.mean())

    @property
    def dark_knowledge(self) -> float:
        """The mean share of probability on the classes other than the top one at T: what the student learns
        from beyond the label."""
        return self._off_top(self.probabilities)

    @property
    def dark_knowledge_at_one(self) -> float:
        """The same share at T = 1."""
        return self._off_top(self.at_one)

    def wrong(self, labels: Sequence[int]) -> list[bool]:
        """For each image, whether the model's top class (the same at every T) is not its label."""
        return [int(top) != int(label) for top, label in zip(self.at_one.argmax(1), labels)]


def soft_targets(teacher: nn.Module, images: Tensor, temperature: float) -> SoftTargets:
    """`teacher`'s softened outputs for `images` (normalised as the model sees them) at `temperature`."""
    logits = predict(teacher, images)
    return SoftTargets(temperature, soften(logits, temperature), soften(logits, 1.0))


def build_student(teacher: str, spec: DistillSpec, input_shape: InputShape, num_classes: int) -> nn.Module:
    """A fresh student: the named `spec.student`, or else the teacher's family, at `spec.width`."""
    return build_model(spec.student or teacher, input_shape, num_classes, width=spec.width)


def teacher_loss(teacher: nn.Module, train: Split, temperature: float = DistillSpec.temperature,
                 alpha: float = DistillSpec.alpha) -> LossFn:
    """The KD loss of a batch against the teacher's logits, computed now, once for the whole split (so the
    teacher may change afterwards: a model pruned in place can teach its own fine-tuning)."""
    targets = predict(teacher, train.x)
    return lambda logits, idx: kd_loss(logits, targets[idx].to(logits.device), train.y[idx].to(logits.device),
                                       temperature, alpha)


def train_student(student: nn.Module, teacher: nn.Module | None, train: Split, spec: DistillSpec, seed: int,
                  progress: ProgressFn = silent, val: Split | None = None) -> nn.Module:
    """Train `student` for `spec.epochs` (with spec.patience: at most, stopped on `val`'s plateau) on the KD loss
    against `teacher`, or, with no teacher, on the labels alone (the control); same optimizer, schedule, batches
    and stopping rule for a seed either way."""
    if spec.patience and val is None:
        raise ValueError("a distill spec with patience needs a validation split")
    loss_fn = teacher_loss(teacher, train, spec.temperature, spec.alpha) if teacher is not None else None
    plateau = Plateau(val, spec.patience) if spec.patience else None
    return fit(student, train, spec.epochs, seed=seed, stage="distill", progress=progress, loss_fn=loss_fn,
               plateau=plateau)


def trained_student(teacher_model: str, teacher: nn.Module | None, train: Split, spec: DistillSpec, seed: int,
                    input_shape: InputShape, num_classes: int, progress: ProgressFn = silent,
                    val: Split | None = None) -> nn.Module:
    """A fresh student, initialised from `seed`, trained with `teacher` (KD) or, with None, on the labels."""
    progress(Progress("distill", f"training the {'KD student' if teacher is not None else 'label-only control'}"))
    seed_everything(seed)
    student = build_student(teacher_model, spec, input_shape, num_classes)
    return train_student(student, teacher, train, spec, seed, progress, val)


class EpochRecorder:
    """A progress callback that passes every event on and keeps each training epoch's last event: the epoch's
    running loss and accuracy, read as a TrainingCurve."""

    def __init__(self, progress: ProgressFn = silent) -> None:
        self.progress = progress
        self.last: dict[int, Progress] = {}

    def __call__(self, event: Progress) -> None:
        if event.epochs and event.batch == event.batches and event.loss is not None:
            self.last[event.epoch] = event
        self.progress(event)

    def curve(self) -> TrainingCurve:
        epochs = sorted(self.last)
        return TrainingCurve(epochs, [self.last[e].loss for e in epochs], [self.last[e].accuracy for e in epochs])


def student_and_control(teacher_model: str, teacher: nn.Module, train: Split, spec: DistillSpec, seed: int,
                        input_shape: InputShape, num_classes: int, progress: ProgressFn = silent,
                        curves: list[TrainingCurve] | None = None, val: Split | None = None
                        ) -> tuple[nn.Module, nn.Module]:
    """The KD student of `teacher` and its label-only control: the same fresh student (same init, batches,
    epochs and stopping rule for `seed`), trained with the teacher and without it, in that order; their training
    reported as stages 'distill · student 1/2' and 'distill · control 2/2'. Given a list `curves`, the KD student's training curve
    and then the control's are appended to it."""
    def labelled(stage: str) -> ProgressFn:
        return lambda event: progress(replace(event, stage=stage) if event.epochs else event)

    models = []
    for source, stage in ((teacher, "distill · student 1/2"), (None, "distill · control 2/2")):
        recorder = EpochRecorder(labelled(stage))
        models.append(trained_student(teacher_model, source, train, spec, seed, input_shape, num_classes, recorder,
                                      val))
        if curves is not None:
            curves.append(recorder.curve())
    kd, control = models
    return kd, control


def mistaken_images(teacher: nn.Module, splits: Splits, split: str = "val", count: int = 5) -> SampleImages:
    """The first `count` images of `splits.<split>` that `teacher` classifies wrongly (none if it makes no
    mistake there): what its soft targets teach beside the label."""
    part = getattr(splits, split)
    wrong = torch.nonzero(predict(teacher, part.x).argmax(1) != part.y).flatten()[:count]
    return images_at(splits, split, wrong.tolist())
