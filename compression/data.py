"""Dataset registry: load a named data set into normalised train/val/test tensors.

Names: ``digits`` (scikit-learn, ships offline, the default), ``mnist``,
``fashion-mnist``, ``cifar10`` (torchvision's files and download) and
``imagefolder:PATH`` (one sub-folder of images per class). Every data set goes
through one path: deterministic stratified split by seed, then per-channel
normalisation with statistics of the train split only. An image folder is decoded
once into the on-disk pixel cache (compression/pixels.py); one too large for memory
stays there and its splits are read a batch at a time.
"""

from __future__ import annotations

import math
import os
import pickle
import stat
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset as TorchDataset
from torchvision import datasets, transforms

from compression import archives, folders
from compression import pixels as pixel_cache
from compression.catalog import IMAGEFOLDER, check_dataset, imagefolder_path
from compression.errors import CompressionError
from compression.folders import DATASET_BYTES_VARIABLE, MAX_DATASET_BYTES, MAX_PIXELS, PIXELS_VARIABLE, limit
from compression.settings import data_dir

TEST_FRACTION = 0.2  # held out for test where a data set has no official test split

# The decoders of the formats folders.IMG_EXTENSIONS names (PPM reads .pgm): a file's content picks among these only,
# so a file named .png is never handed to a plugin such as EPS, which runs Ghostscript.
_IMAGE_FORMATS = ("BMP", "JPEG", "PNG", "PPM", "TIFF", "WEBP")


@dataclass(frozen=True)
class Normalisation:
    """Per-channel mean and std of inputs in 0 … 1, as a model was trained with."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class Split:
    """One split: float32 images (N, C, H, W) normalised with the train statistics, int64 labels (N,). The
    images are a tensor, or, for a data set too large for memory, a view of the pixel cache indexed alike."""

    x: torch.Tensor | pixel_cache.StreamedImages
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


class _ArrayType:
    """Stands for numpy.ndarray in a CIFAR pickle: the array reconstruction takes it as an argument, but a pickle
    cannot call it (numpy.ndarray(shape) would allocate any size a hostile file names)."""


_RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's array reconstruction, however this numpy spells its module


def _empty_array(subtype: object, shape: object, dtype: object) -> np.ndarray:
    """numpy's array reconstruction as an array pickle calls it: an empty ndarray that the pickle's state then
    fills with the bytes it carries (so its size is bounded by the file's)."""
    if not isinstance(subtype, _ArrayType) or shape != (0,):
        raise pickle.UnpicklingError("array reconstruction asked for something other than an empty ndarray")
    return _RECONSTRUCT(np.ndarray, (0,), dtype)


def _latin1(text: str, encoding: str) -> bytes:
    """_codecs.encode as a Python 3 pickle of bytes uses it (protocol 2 writes bytes as latin-1 text)."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"bytes encoded as {encoding[:20]!r}, not latin-1")
    return text.encode("latin-1")


# Every global a CIFAR-10 python batch needs (the official Python 2 files, and batches written by Python 3 with
# protocol 2, as the tests write them); none can run code or allocate more than the file holds.
_CIFAR_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _empty_array,
    ("numpy._core.multiarray", "_reconstruct"): _empty_array,
    ("numpy", "ndarray"): _ArrayType(),
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1,
}
# What a malformed pickle raises while it is read or its arrays are rebuilt.
_MALFORMED_PICKLE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
                     KeyError, OverflowError)


class _CifarUnpickler(pickle.Unpickler):
    """Reads a CIFAR-10 python batch (latin1, for the Python 2 pickles) and refuses any other global."""

    def __init__(self, file: BinaryIO, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _CIFAR_GLOBALS:
            return _CIFAR_GLOBALS[module, name]
        wanted = f"{module}.{name}"[:100]  # shown quoted: a hostile name may hold line breaks
        raise CompressionError(f"cifar10: {self.path} is not a CIFAR-10 batch: it asks to load {wanted!r}")


def _unpickle(path: Path) -> dict:
    """One CIFAR-10 python batch as a dict, read without running anything the file asks for; any other
    content is a one-line error."""
    try:
        with path.open("rb") as f:
            batch = _CifarUnpickler(f, path).load()
    except CompressionError:
        raise
    except _MALFORMED_PICKLE as err:
        raise CompressionError(f"cifar10: cannot read {path} as a CIFAR-10 batch ({type(err).__name__})") from None
    if not isinstance(batch, dict):
        raise CompressionError(f"cifar10: {path} is not a CIFAR-10 batch: it holds a {type(batch).__name__}")
    return batch


def _batch_rows(batch: dict, path: Path, classes: int) -> tuple[np.ndarray, list[int]]:
    """A batch's images (N rows of 3072 uint8) and its N labels, each a class index; else a one-line error."""
    data, labels = batch.get("data"), batch.get("labels")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072
            and isinstance(labels, list) and len(labels) == len(data)
            and all(type(label) is int and 0 <= label < classes for label in labels)):
        raise CompressionError(f"cifar10: {path} is not a CIFAR-10 batch: it needs uint8 'data' rows of 3072 "
                               f"pixels and one 'labels' entry below {classes} for each")
    return data, labels


def _class_names(meta: dict, path: Path) -> list[str]:
    """The class names of batches.meta; else a one-line error."""
    names = meta.get("label_names")
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise CompressionError(f"cifar10: {path} is not CIFAR-10's batches.meta: it needs a 'label_names' list")
    return names


def _read_cifar(source: _Source, root: Path, train: bool) -> tuple[_Raw, list[str]]:
    """Read one CIFAR-10 split from the python batches.

    torchvision's CIFAR10 insists on the md5 of every batch file, so it cannot load
    anything but the official files; the format is read here directly, and
    torchvision is used only to download.
    """
    folder = root / source.folder
    classes = _class_names(_unpickle(folder / "batches.meta"), folder / "batches.meta")
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    rows = [_batch_rows(_unpickle(folder / name), folder / name, len(classes)) for name in names]
    x = np.concatenate([data for data, _ in rows]).reshape(-1, 3, 32, 32)
    y = torch.tensor([label for _, labels in rows for label in labels], dtype=torch.int64)
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


def _what_to_fetch(source: _Source) -> str:
    """Which files to put in a data set's folder: for an IDX data set, torchvision's four .gz downloads (unpacked
    on first use) and where they are, or the files unpacked; else the files themselves."""
    resources = getattr(source.dataset, "resources", None)
    if not resources or source.read is not _read_idx:
        return f"{', '.join(source.files)} there"
    downloads = ", ".join(filename for filename, _ in resources)
    return (f"the four files {downloads} there (from {source.dataset.mirrors[0]}; unpacked on first use), or "
            f"the same unpacked ({', '.join(source.files)})")


def missing_files(name: str, root: Path | None = None) -> str | None:
    """The one-line message of a torchvision data set whose files are not on disk yet (what a run without network
    would say, naming the folder and the files to put there), or None when they are (or it downloads nothing)."""
    source = _SOURCES.get(name)
    if source is None:
        return None
    folder = (Path(root) if root is not None else data_dir()) / source.folder
    if all((folder / f).is_file() for f in source.files):
        return None
    return f"{name}: files not found in {folder}: put {_what_to_fetch(source)}"


def _ensure_files(name: str, source: _Source, root: Path, download: bool) -> None:
    """Make sure the data set's files are on disk, downloading them if allowed (torchvision unpacks official .gz
    files already in the folder without the network); else a one-line error."""
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
        f"{name}: files not found in {folder} and {reason}: put {_what_to_fetch(source)}"
    )


def _load_torchvision(name: str, root: Path, download: bool) -> tuple[_Raw, _Raw, list[str]]:
    """A torchvision data set's official train and test splits."""
    source = _SOURCES[name]
    _ensure_files(name, source, root, download)
    train, classes = source.read(source, root, True)
    test, _ = source.read(source, root, False)
    return train, test, classes


def _check_decoded_size(images: int, image_size: tuple[int, int], path: Path) -> None:
    """Refuse, before decoding anything, a set whose resized RGB pixels would pass the byte limit."""
    size, most = images * 3 * math.prod(image_size), limit(DATASET_BYTES_VARIABLE, MAX_DATASET_BYTES)
    if size > most:
        raise CompressionError(f"imagefolder: {images} images of {path} at {image_size[0]}x{image_size[1]} take {size} "
                               f"bytes decoded, over the limit of {most} (set {DATASET_BYTES_VARIABLE} to raise it)")


def _open_regular(file: str) -> BinaryIO:
    """`file` opened for reading if it is still a regular file: the walk checked, but it may have been replaced
    by a FIFO since. Non-blocking, so even opening that could not wait forever."""
    fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CompressionError(f"imagefolder: {file} is no longer a regular file")
    return os.fdopen(fd, "rb")


def _decode(file: str, to_tensor: Callable[[Image.Image], torch.Tensor], max_pixels: int) -> torch.Tensor:
    """One image file as the model's RGB uint8 tensor. Pillow refuses (with the warning made an error) an image
    whose header declares more than `max_pixels` before decoding it; every refusal is one line."""
    Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow's bomb guard is process-wide: the project's bound is its bound
    try:
        with _open_regular(file) as f, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f, formats=_IMAGE_FORMATS) as image:
                return to_tensor(image.convert("RGB"))
    except CompressionError:  # already one line (a file that stopped being a regular one)
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise CompressionError(f"imagefolder: {file} has more than {max_pixels} pixels (the limit; set "
                               f"{PIXELS_VARIABLE} to raise it)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:  # not an image, truncated, or unreadable
        raise CompressionError(f"imagefolder: cannot read image {file} ({type(err).__name__})") from None


class _Decoder(TorchDataset):
    """Image files decoded by position, resized to `image_size` (what DataLoader workers run to fill the pixel
    cache); a file it refuses is its one-line reason, returned rather than raised across processes."""

    def __init__(self, files: list[str], image_size: tuple[int, int], max_pixels: int) -> None:
        self.files, self.max_pixels = files, max_pixels
        self.to_tensor = transforms.Compose([transforms.Resize(image_size), transforms.PILToTensor()])

    def __getitem__(self, i: int) -> torch.Tensor | str:
        try:
            return _decode(self.files[i], self.to_tensor, self.max_pixels)
        except CompressionError as err:
            return str(err)


@dataclass(frozen=True)
class _Folder:
    """An image folder decoded: its pixels in the on-disk cache, one label a row, and its class names."""

    pixels: pixel_cache.MappedPixels
    y: torch.Tensor
    classes: list[str]

    def in_memory(self) -> _Raw:
        """All of its pixels read into memory, with its labels."""
        return _Raw(torch.from_numpy(self.pixels.rows(slice(None))), self.y, 255.0)


def _load_imagefolder(path: Path, image_size: tuple[int, int]) -> _Folder:
    """The user's images (one sub-folder per class, images at any depth below it), as RGB resized to
    image_size, decoded once into the pixel cache; no test split. Every bound of the walk and of decoding is
    checked before work it guards."""
    if min(image_size) < 1:
        raise CompressionError(f"image_size must be positive, got {image_size}")
    classes, samples = folders.scan(path)
    _check_decoded_size(len(samples), image_size, path)
    files = [file for file, _ in samples]
    decoder = _Decoder(files, image_size, limit(PIXELS_VARIABLE, MAX_PIXELS))
    key = pixel_cache.cache_key(path, samples, image_size)
    cached = pixel_cache.decoded(key, decoder, len(files), (3, *image_size))
    return _Folder(cached, torch.tensor([label for _, label in samples], dtype=torch.int64), classes)


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


def _model_statistics(name: str, channels: int, norm: Normalisation) -> tuple[torch.Tensor, torch.Tensor]:
    """A model's mean and std as tensors; refused if made for another number of channels than the data set has."""
    if len(norm.mean) != channels:
        raise CompressionError(f"{name} has {channels} channel(s); the model's normalisation is for "
                               f"{len(norm.mean)}")
    return torch.tensor(norm.mean), torch.tensor(norm.std)


def _make_splits(
    name: str, pool: _Raw, test: _Raw | None, classes: list[str], seed: int, val_fraction: float,
    norm: Normalisation | None = None,
) -> Splits:
    """Split off test (when there is no official one) and validation, then normalise with train statistics
    (or with `norm`: the statistics a model was trained with)."""
    if test is None:
        rest, held = _split_indices(pool.y, TEST_FRACTION, seed, "test")
        pool, test = _subset(pool, rest), _subset(pool, held)
    train_index, val_index = _split_indices(pool.y, val_fraction, seed, "validation")
    train_raw, val_raw = _subset(pool, train_index), _subset(pool, val_index)
    train_x = _scaled(train_raw)
    if norm is not None:
        mean, std = _model_statistics(name, train_x.shape[1], norm)
    else:
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


def _streamed_splits(name: str, folder: _Folder, seed: int, val_fraction: float,
                     norm: Normalisation | None = None) -> Splits:
    """The splits _make_splits cuts from the same images (same rows for a seed), left in the pixel cache and read
    a batch at a time; train statistics come from exact per-channel histograms."""
    rest, held = _split_indices(folder.y, TEST_FRACTION, seed, "test")
    train_at, val_at = _split_indices(folder.y[torch.from_numpy(rest)], val_fraction, seed, "validation")
    shape = tuple(folder.pixels.shape[1:])
    if norm is not None:
        mean, std = _model_statistics(name, shape[0], norm)
    else:
        mean, std = pixel_cache.channel_statistics(folder.pixels, rest[train_at], 255.0)

    def split(index: np.ndarray) -> Split:
        images = pixel_cache.StreamedImages(folder.pixels, index, 255.0, mean, std)
        return Split(images, folder.y[torch.from_numpy(index)])

    return Splits(name=name, train=split(rest[train_at]), val=split(rest[val_at]), test=split(held),
                  input_shape=shape, num_classes=len(folder.classes), classes=folder.classes,
                  mean=mean.tolist(), std=std.tolist())


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
    return images_at(splits, split, rows)


def images_at(splits: Splits, split: str, rows: list[int]) -> SampleImages:
    """The images of `splits.<split>` at positions `rows`, as SampleImages (e.g. the test images a compression
    flipped from right to wrong)."""
    part: Split = getattr(splits, split)
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
    image_size: int | tuple[int, int] = 32,
    norm: Normalisation | None = None,
) -> Splits:
    """Load a data set by name into normalised train/val/test splits, deterministic in seed.

    root is where torchvision data sets live (default: settings.data_dir()); download
    lets torchvision fetch missing files; image_size (side, or height and width) applies to imagefolder
    only; `norm` replaces the train statistics (a model imported with its own).
    """
    check_dataset(name)
    if not 0 < val_fraction < 1:
        raise CompressionError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    if name.startswith(IMAGEFOLDER):
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        folder = _load_imagefolder(archives.image_folder(imagefolder_path(name)), size)
        if pixel_cache.streams(len(folder.y), folder.pixels.shape[1:]):
            return _streamed_splits(name, folder, seed, val_fraction, norm)
        pool, test, classes = folder.in_memory(), None, folder.classes
    elif name == "digits":
        pool, test, classes = _load_digits()
    else:
        source_root = Path(root) if root is not None else data_dir()
        pool, test, classes = _load_torchvision(name, source_root, download)
    return _make_splits(name, pool, test, classes, seed, val_fraction, norm)
