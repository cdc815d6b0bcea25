"""Fit, fine-tune and evaluate, repeatably, reporting progress through a callback. Training runs on the device
$COMPRESSION_DEVICE names (auto: CUDA, else Apple MPS, else the CPU); every model is handed back on the CPU, where
it is exported and measured."""

import copy
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from compression.data import Split
from compression.errors import CompressionError
from compression.pixels import StreamedImages, runs

DEVICE_VARIABLE = "COMPRESSION_DEVICE"
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class Progress:
    """One progress event: a stage message, or a training step (epoch/batch of epochs/batches)."""

    stage: str
    message: str = ""
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    loss: float | None = None
    accuracy: float | None = None
    stopped: "Stopped | None" = None  # the last event of a training that stopped on a validation plateau

    @property
    def fraction(self) -> float:
        """How far through this stage's training, 0 … 1 (0 for plain messages)."""
        if not self.epochs or not self.batches:
            return 0.0
        return ((self.epoch - 1) * self.batches + self.batch) / (self.epochs * self.batches)


ProgressFn = Callable[[Progress], None]


def silent(_: Progress) -> None:
    """A progress callback that ignores everything."""


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch so that model init and training repeat on CPU."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits of `model` in eval mode for all of `x`."""
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def evaluate(model: nn.Module, split: Split) -> float:
    """Top-1 accuracy of `model` on `split`, 0 … 1."""
    return (predict(model, split.x).argmax(1) == split.y).float().mean().item()


LEARNING_RATE = 3e-3
DEFAULT_THREADS = torch.get_num_threads()  # torch's own choice: a thread a physical core, or OMP_NUM_THREADS


def busy_cores(window: float = 0.25) -> float:
    """How many cores are busy right now (by any process): the non-idle share of all CPU time over `window`
    seconds, from Linux's /proc/stat; 0.0 where that cannot be read."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # all, idle + iowait
    try:
        total0, idle0 = sample()
        time.sleep(window)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    total = total1 - total0
    return (os.cpu_count() or 1) * (1 - (idle1 - idle0) / total) if total > 0 else 0.0


def use_free_cores(share: int = 1) -> int:
    """Give torch one thread a core that is free now (at least one, at most DEFAULT_THREADS and this process's
    `share` of the cores: a worker running `share` jobs at once gives each its part) for the training that
    follows in this thread, and return the count. Two threads on two cores, one of them busy elsewhere, train
    the digits CNN about 3× slower than one thread (two such jobs started together each saw idle cores, took
    two threads and fine-tuned 10× slower); on a quiet machine two train it 1.15× and the 3x32x32 models 1.8×
    faster than one."""
    cores = os.cpu_count() or 1
    threads = max(1, min(DEFAULT_THREADS, cores // max(share, 1), round(cores - busy_cores())))
    torch.set_num_threads(threads)
    return threads


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A training loss from a batch's logits and the indices of the batch's samples in the split."""


def _label_loss(split: Split) -> LossFn:
    """Cross-entropy against the split's labels: the plain training loss."""
    return lambda logits, idx: F.cross_entropy(logits, split.y[idx].to(logits.device))


def training_device(choice: str | None = None) -> torch.device:
    """Where training runs: `choice` (default $COMPRESSION_DEVICE, else auto). auto takes CUDA if present, else
    Apple's MPS, else the CPU; asking for a device this machine does not have is a one-line error."""
    choice = (choice or os.environ.get(DEVICE_VARIABLE) or "auto").strip().lower()
    if choice not in DEVICES:
        raise CompressionError(f"device must be one of {', '.join(DEVICES)}, got {choice[:40]!r}")
    present = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if choice == "auto":
        return torch.device(next(d for d in ("cuda", "mps", "cpu") if present[d]))
    if not present[choice]:
        raise CompressionError(f"device {choice} is not available on this machine: use --device auto or cpu")
    return torch.device(choice)


def _batches(split: Split, order: torch.Tensor, batch_size: int,
             device: torch.device) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """(images, positions) of `split` for each `batch_size` run of `order`: sliced from memory, or read ahead from
    the pixel cache by DataLoader workers when the split streams."""
    if isinstance(split.x, StreamedImages):
        return split.x.batches(order, batch_size, pin=device.type == "cuda")
    return ((split.x[idx], idx) for idx in runs(order, batch_size))


@dataclass(frozen=True)
class Plateau:
    """Stop training once validation stops improving: after each epoch the model is scored on `val`, and
    training stops after `patience` epochs without a new best (or at the epoch cap), the best epoch's weights
    restored.

    The score is the cross-entropy on `val`'s labels, ties broken by accuracy. Loss, not accuracy: a
    validation split is small (144 images on digits, one image = 0.69 points), so its accuracy moves in steps
    and its best epoch is mostly noise, while the loss still says whether the model is getting better between
    them. The labels' loss, not the training loss: under KD the training loss also rewards agreeing with the
    teacher, where what a user is shown is label accuracy."""

    val: Split
    patience: int

    @property
    def lr_patience(self) -> int:
        """Epochs without a new best before the learning rate halves: a third of the patience, so that the rate
        has halved twice before training gives up."""
        return max(self.patience // 3, 1)


@dataclass(frozen=True)
class Stopped:
    """How a training with a plateau stop ended: the epochs run of the `cap`, the best epoch (whose weights the
    model keeps; 0: the weights it started from), that epoch's validation loss and accuracy, and the last
    epoch's validation loss."""

    epochs_run: int
    cap: int
    best_epoch: int
    val_loss: float
    val_accuracy: float
    last_val_loss: float

    def text(self) -> str:
        return f"stopped at epoch {self.epochs_run} of at most {self.cap} (best {self.best_epoch})"


@torch.no_grad()
def _val_score(model: nn.Module, val: Split, device: torch.device, batch_size: int = 512) -> tuple[float, float]:
    """(cross-entropy, -accuracy) of `model` on `val` in eval mode: lower is better, loss first."""
    model.eval()
    loss = correct = 0.0
    for i in range(0, len(val.y), batch_size):
        logits = model(val.x[i:i + batch_size].to(device)).cpu()
        labels = val.y[i:i + batch_size]
        loss += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
    return loss / len(val.y), -correct / len(val.y)


def fit(model: nn.Module, split: Split, epochs: int, *, seed: int, lr: float = LEARNING_RATE, batch_size: int = 64,
        stage: str = "train", progress: ProgressFn = silent, loss_fn: LossFn | None = None,
        plateau: Plateau | None = None) -> nn.Module:
    """Train `model` on `split` with Adam and cross-entropy (or `loss_fn`), on the training device;
    deterministic for a seed on CPU. The model comes back on the CPU.

    Without `plateau` (or with patience 0): exactly `epochs` epochs, a one-cycle learning rate peaking at `lr`.
    With it: at most `epochs` (a cap), at a constant `lr` halved whenever validation has not improved for
    `plateau.lr_patience` epochs (a schedule that needs no known length), stopped after `plateau.patience`
    epochs without a new best; the best epoch's weights (epoch 0: those it started from) are restored, and the
    last Progress event carries the `Stopped` figures."""
    if epochs == 0:
        return model.eval()
    if plateau is not None and plateau.patience:
        return _fit_plateau(model, split, epochs, plateau, seed=seed, lr=lr, batch_size=batch_size, stage=stage,
                            progress=progress, loss_fn=loss_fn)
    device = training_device()
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    batches = max(1, -(-len(split.y) // batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * batches)
    for epoch in range(1, epochs + 1):
        _epoch(model, split, device, generator, optimizer, schedule, batch_size, loss_fn, stage, epoch, epochs, progress)
    return model.cpu().eval()


def _fit_plateau(model: nn.Module, split: Split, cap: int, plateau: Plateau, *, seed: int, lr: float,
                 batch_size: int, stage: str, progress: ProgressFn, loss_fn: LossFn | None) -> nn.Module:
    """fit's plateau stop (see fit)."""
    device = training_device()
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=plateau.lr_patience,
                                                          threshold=0.0)
    score = best_score = _val_score(model, plateau.val, device)
    best_epoch, best_state = 0, copy.deepcopy(model.state_dict())
    epoch = 0
    while epoch < cap and epoch - best_epoch < plateau.patience:
        epoch += 1
        _epoch(model, split, device, generator, optimizer, None, batch_size, loss_fn, stage, epoch, cap, progress)
        score = _val_score(model, plateau.val, device)
        schedule.step(score[0])
        if score < best_score:
            best_score, best_epoch, best_state = score, epoch, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    stopped = Stopped(epoch, cap, best_epoch, best_score[0], -best_score[1], score[0])
    progress(Progress(stage, stopped.text(), epoch=epoch, epochs=cap, loss=stopped.val_loss,
                      accuracy=stopped.val_accuracy, stopped=stopped))
    return model.cpu().eval()


def _epoch(model: nn.Module, split: Split, device: torch.device, generator: torch.Generator,
           optimizer: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LRScheduler | None, batch_size: int,
           loss_fn: LossFn | None, stage: str, epoch: int, epochs: int, progress: ProgressFn) -> None:
    """One training epoch over `split` in the generator's order, the schedule (if any) stepped each batch."""
    criterion = loss_fn or _label_loss(split)
    batches = max(1, -(-len(split.y) // batch_size))
    model.train()
    order = torch.randperm(len(split.y), generator=generator)
    seen = correct = 0
    total_loss = 0.0
    for batch, (x, idx) in enumerate(_batches(split, order, batch_size, device), 1):
        logits = model(x.to(device))
        loss = criterion(logits, idx)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
        seen += len(idx)
        correct += (logits.argmax(1).cpu() == split.y[idx]).sum().item()
        total_loss += loss.item() * len(idx)
        progress(Progress(stage, epoch=epoch, epochs=epochs, batch=batch, batches=batches,
                          loss=total_loss / seen, accuracy=correct / seen))
