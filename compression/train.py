"""Fit, fine-tune and evaluate on CPU, repeatably, reporting progress through a callback."""

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from compression.data import Split


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


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A training loss from a batch's logits and the indices of the batch's samples in the split."""


def _label_loss(split: Split) -> LossFn:
    """Cross-entropy against the split's labels: the plain training loss."""
    return lambda logits, idx: F.cross_entropy(logits, split.y[idx])


def fit(model: nn.Module, split: Split, epochs: int, *, seed: int, lr: float = LEARNING_RATE, batch_size: int = 64,
        stage: str = "train", progress: ProgressFn = silent, loss_fn: LossFn | None = None) -> nn.Module:
    """Train `model` on `split` for `epochs` with Adam, a one-cycle learning rate peaking at `lr`, and
    cross-entropy (or `loss_fn`); deterministic for a seed on CPU."""
    if epochs == 0:
        return model.eval()
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
        for batch, start in enumerate(range(0, len(order), batch_size), 1):
            idx = order[start:start + batch_size]
            logits = model(split.x[idx])
            loss = criterion(logits, idx)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            seen += len(idx)
            correct += (logits.argmax(1) == split.y[idx]).sum().item()
            total_loss += loss.item() * len(idx)
            progress(Progress(stage, epoch=epoch, epochs=epochs, batch=batch, batches=batches,
                              loss=total_loss / seen, accuracy=correct / seen))
    model.eval()
    return model
