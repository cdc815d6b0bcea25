"""Dataset registry: load a named data set into normalised train/val/test tensors.

Names: ``digits`` (scikit-learn, ships offline, the default), ``mnist``,
``fashion-mnist``, ``cifar10`` (torchvision's files and download) and
``imagefolder:PATH`` (one sub-folder of images per class). Every data set goes
through one path: deterministic stratified split by seed, then per-channel
normalisation with statistics of the train split only.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torchvision import datasets, transforms

from compression.catalog import IMAGEFOLDER, check_dataset, imagefolder_path
from compression.errors import CompressionError
from compression.settings import data_dir

TEST_FRACTION = 0.2  # held out for test where a data set has no official test split


@dataclass(frozen=True)
class Split:
    """One split: float32 images (N, C, H, W) normalised with the train statistics, int64 labels (N,)."""

    x: torch.Tensor
    y: torch.Tensor


@dataclass(frozen=True)
class Splits:
    """A loaded data set: its three splits and what a model needs to know about them."""

    name: str
    train: Split
    val: Split
    test: Split
    input_shape: tuple[int, int, int]
    num_classes: int
    classes: list[str]
    mean: list[float]
    std: list[float]


class _Raw(NamedTuple):
    """Pixels as stored (integers 0..peak, (N, C, H, W)) and int64 labels, before any scaling."""

    x: torch.Tensor
    y: torch.Tensor
    peak: float


@dataclass(frozen=True)
class _Source:
    """A torchvision data set: the class that downloads it, where its files live, how to read a split."""

    dataset: type
    folder: str  # below the data root, as torchvision lays it out
    files: tuple[str, ...]
    read: Callable[[_Source, Path, bool], tuple[_Raw, list[str]]]


def _read_idx(source: _Source, root: Path, train: bool) -> tuple[_Raw, list[str]]:
    """Read one MNIST-style split (IDX files) through torchvision's own reader."""
    ds = source.dataset(str(root), train=train, download=False)
    return _Raw(ds.data.unsqueeze(1), ds.targets.long(), 255.0), list(ds.classes)


def _unpickle(path: Path) -> dict:
    """Load one CIFAR python batch the way torchvision does (latin1, for the Python 2 pickles)."""
    with path.open("rb") as f:
        return pickle.load(f, encoding="latin1")


def _read_cifar(source: _Source, root: Path, train: bool) -> tuple[_Raw, list[str]]:
    """Read one CIFAR-10 split from the python batches.

    torchvision's CIFAR10 insists on the md5 of every batch file, so it cannot load
    anything but the official files; the format is read here directly, and
    torchvision is used only to download.
    """
    folder = root / source.folder
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    batches = [_unpickle(folder / name) for name in names]
    x = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32)
    y = torch.tensor([label for b in batches for label in b["labels"]], dtype=torch.int64)
    classes = list(_unpickle(folder / "batches.meta")["label_names"])
    return _Raw(torch.from_numpy(x), y, 255.0), classes


_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_SOURCES: dict[str, _Source] = {
    "mnist": _Source(datasets.MNIST, "MNIST/raw", _IDX_FILES, _read_idx),
    "fashion-mnist": _Source(datasets.FashionMNIST, "FashionMNIST/raw", _IDX_FILES, _read_idx),
    "cifar10": _Source(
        datasets.CIFAR10,
        "cifar-10-batches-py",
        (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"),
        _read_cifar,
    ),
}


def _load_digits() -> tuple[_Raw, None, list[str]]:
    """scikit-learn's 8x8 digits (values 0..16); no official test split."""
    bunch = load_digits()
    x = torch.from_numpy(bunch.images).to(torch.uint8).unsqueeze(1)
    y = torch.from_numpy(bunch.target).long()
    return _Raw(x, y, 16.0), None, [str(c) for c in bunch.target_names]


def _ensure_files(name: str, source: _Source, root: Path, download: bool) -> None:
    """Make sure the data set's files are on disk, downloading them if allowed; else a one-line error."""
    folder = root / source.folder
    if all((folder / f).is_file() for f in source.files):
        return
    reason = "download is off"
    if download:
        try:
            source.dataset(str(root), train=True, download=True)
            return
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            reason = f"download failed ({type(err).__name__}; no network?)"
    raise CompressionError(
        f"{name}: files not found in {folder} and {reason}: put {', '.join(source.files)} there"
    )


def _load_torchvision(name: str, root: Path, download: bool) -> tuple[_Raw, _Raw, list[str]]:
    """A torchvision data set's official train and test splits."""
    source = _SOURCES[name]
    _ensure_files(name, source, root, download)
    train, classes = source.read(source, root, True)
    test, _ = source.read(source, root, False)
    return train, test, classes


def _load_imagefolder(path: Path, image_size: int) -> tuple[_Raw, None, list[str]]:
    """The user's images (one sub-folder per class), as RGB resized to image_size; no test split."""
    if image_size < 1:
        raise CompressionError(f"image_size must be positive, got {image_size}")
    to_tensor = transforms.Compose([transforms.Resize((image_size, image_size)), transforms.PILToTensor()])
    try:
        ds = datasets.ImageFolder(str(path), transform=to_tensor, allow_empty=True)
    except FileNotFoundError:
        raise CompressionError(
            f"imagefolder: no class folders in {path} (expected one sub-folder of images per class)"
        ) from None
    if not ds.samples:
        raise CompressionError(f"imagefolder: no images found in the class folders of {path}")
    empty = sorted(set(ds.classes) - {ds.classes[t] for t in ds.targets})
    if empty:
        raise CompressionError(f"imagefolder: class folders without images in {path}: {', '.join(empty)}")
    if len(ds.classes) < 2:
        raise CompressionError(f"imagefolder: {path} has {len(ds.classes)} class folder; need at least 2")
    images = []
    for index, (file, _) in enumerate(ds.samples):
        try:
            images.append(ds[index][0])
        except OSError as err:
            raise CompressionError(f"imagefolder: cannot read image {file} ({type(err).__name__})") from None
    labels = torch.tensor(ds.targets, dtype=torch.int64)
    return _Raw(torch.stack(images), labels, 255.0), None, list(ds.classes)


def _split_indices(y: torch.Tensor, fraction: float, seed: int, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Deterministically split positions 0..N-1 into (kept, held out).

    Stratified when every class has at least 2 samples and fits in both parts, else plain random.
    """
    labels = y.numpy()
    n = len(labels)
    n_held = math.ceil(fraction * n)
    if n_held >= n:
        raise CompressionError(f"only {n} samples: too few to split off a {part} set of {fraction:.0%}")
    counts = np.unique(labels, return_counts=True)[1]
    stratify = labels if counts.min() >= 2 and len(counts) <= min(n_held, n - n_held) else None
    kept, held = train_test_split(np.arange(n), test_size=n_held, random_state=seed, stratify=stratify)
    return kept, held


def _subset(raw: _Raw, index: np.ndarray) -> _Raw:
    """The rows of raw at index."""
    rows = torch.from_numpy(index)
    return _Raw(raw.x[rows], raw.y[rows], raw.peak)


def _scaled(raw: _Raw) -> torch.Tensor:
    """Raw pixels as float32 in 0..1."""
    return raw.x.float().div_(raw.peak)


def _standardised(x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> Split:
    """A split of 0..1 images standardised in place per channel with the given statistics."""
    return Split(x.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1)), y)


def _make_splits(
    name: str, pool: _Raw, test: _Raw | None, classes: list[str], seed: int, val_fraction: float
) -> Splits:
    """Split off test (when there is no official one) and validation, then normalise with train statistics."""
    if test is None:
        rest, held = _split_indices(pool.y, TEST_FRACTION, seed, "test")
        pool, test = _subset(pool, rest), _subset(pool, held)
    train_index, val_index = _split_indices(pool.y, val_fraction, seed, "validation")
    train_raw, val_raw = _subset(pool, train_index), _subset(pool, val_index)
    train_x = _scaled(train_raw)
    var, mean = torch.var_mean(train_x, dim=(0, 2, 3), correction=0)
    std = torch.where(var > 0, var.sqrt(), torch.ones_like(var))
    train = _standardised(train_x, train_raw.y, mean, std)
    return Splits(
        name=name,
        train=train,
        val=_standardised(_scaled(val_raw), val_raw.y, mean, std),
        test=_standardised(_scaled(test), test.y, mean, std),
        input_shape=tuple(train.x.shape[1:]),
        num_classes=len(classes),
        classes=classes,
        mean=mean.tolist(),
        std=std.tolist(),
    )


@dataclass(frozen=True)
class SampleImages:
    """A few images of a split, one per class: as the model sees them (`x`, normalised), as a screen shows
    them (`pixels`, channels first in 0 … 1), their labels and class names, and every class of the data set."""

    x: torch.Tensor
    pixels: np.ndarray
    labels: list[int]
    names: list[str]
    classes: list[str]


def sample_images(splits: Splits, split: str = "train", classes: int = 10, index: int = 0) -> SampleImages:
    """The `index`-th image (the last, if a class has fewer) of each of the first `classes` classes of
    `splits.<split>` that have any: the pictures a page shows of a data set."""
    part: Split = getattr(splits, split)
    rows = []
    for label in range(min(classes, splits.num_classes)):
        found = torch.nonzero(part.y == label).flatten()
        if len(found):
            rows.append(int(found[min(index, len(found) - 1)]))
    x = part.x[rows]
    mean = torch.tensor(splits.mean).view(1, -1, 1, 1)
    std = torch.tensor(splits.std).view(1, -1, 1, 1)
    labels = part.y[rows].tolist()
    return SampleImages(x, (x * std + mean).clamp(0, 1).numpy(), labels, [splits.classes[i] for i in labels],
                        list(splits.classes))


def screen_image(pixels: np.ndarray, min_width: int = 0) -> np.ndarray:
    """An image (channels, height, width) in 0 … 1 as a screen shows it: RGB uint8, channels last; a
    one-channel image (digits, MNIST, Fashion-MNIST: ink is 1) as dark ink on white; enlarged by whole pixels
    to at least `min_width` (an 8×8 digit stays sharp)."""
    pixels = np.clip(pixels, 0, 1)
    if pixels.shape[0] == 1:
        pixels = np.repeat(1 - pixels, 3, axis=0)
    image = np.round(pixels.transpose(1, 2, 0) * 255).astype(np.uint8)
    factor = max(1, min_width // image.shape[1])
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def load_dataset(
    name: str,
    seed: int = 0,
    root: Path | None = None,
    download: bool = True,
    val_fraction: float = 0.1,
    image_size: int = 32,
) -> Splits:
    """Load a data set by name into normalised train/val/test splits, deterministic in seed.

    root is where torchvision data sets live (default: settings.data_dir()); download
    lets torchvision fetch missing files; image_size applies to imagefolder only.
    """
    check_dataset(name)
    if not 0 < val_fraction < 1:
        raise CompressionError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    if name.startswith(IMAGEFOLDER):
        pool, test, classes = _load_imagefolder(imagefolder_path(name), image_size)
    elif name == "digits":
        pool, test, classes = _load_digits()
    else:
        source_root = Path(root) if root is not None else data_dir()
        pool, test, classes = _load_torchvision(name, source_root, download)
    return _make_splits(name, pool, test, classes, seed, val_fraction)
