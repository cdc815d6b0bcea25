"""Fit, fine-tune and evaluate, repeatably, reporting progress through a callback. Training runs on the device
$COMPRESSION_DEVICE names (auto: CUDA, else Apple MPS, else the CPU); every model is handed back on the CPU, where
it is exported and measured."""

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


def fit(model: nn.Module, split: Split, epochs: int, *, seed: int, lr: float = LEARNING_RATE, batch_size: int = 64,
        stage: str = "train", progress: ProgressFn = silent, loss_fn: LossFn | None = None) -> nn.Module:
    """Train `model` on `split` for `epochs` with Adam, a one-cycle learning rate peaking at `lr`, and
    cross-entropy (or `loss_fn`), on the training device; deterministic for a seed on CPU. The model comes back
    on the CPU."""
    if epochs == 0:
        return model.eval()
    device = training_device()
    model.to(device)
    criterion = loss_fn or _label_loss(split)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    batches = max(1, -(-len(split.y) // batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * batches)
    for epoch in range(1, epochs + 1):
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
            schedule.step()
            seen += len(idx)
            correct += (logits.argmax(1).cpu() == split.y[idx]).sum().item()
            total_loss += loss.item() * len(idx)
            progress(Progress(stage, epoch=epoch, epochs=epochs, batch=batch, batches=batches,
                              loss=total_loss / seen, accuracy=correct / seen))
    return model.cpu().eval()
