"""Knowledge distillation (Hinton et al., 2015): a narrow student learns from a trained teacher's softened
outputs; a label-only control with the same init, batches and epochs shows what the teacher adds."""

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from compression.data import Split
from compression.models import InputShape, build_model
from compression.recipe import DistillSpec
from compression.train import LossFn, Plateau, Progress, ProgressFn, fit, predict, seed_everything, silent


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


def student_and_control(teacher_model: str, teacher: nn.Module, train: Split, spec: DistillSpec, seed: int,
                        input_shape: InputShape, num_classes: int, progress: ProgressFn = silent,
                        val: Split | None = None) -> tuple[nn.Module, nn.Module]:
    """The KD student of `teacher` and its label-only control: the same fresh student (same init, batches,
    epochs and stopping rule for `seed`), trained with the teacher and without it, in that order."""
    kd, control = (trained_student(teacher_model, source, train, spec, seed, input_shape, num_classes, progress, val)
                   for source in (teacher, None))
    return kd, control
