"""Decoded images on disk: an image folder is decoded once into a uint8 `.npy` file under
$COMPRESSION_HOME/cache/pixels, keyed by the folder's files and the image size, and memory-mapped; a split too
large for memory is a view of it that gives normalised float32 images on demand, fed through a `DataLoader`
with workers. Pages a read touches are handed back to the kernel, so resident memory stays a few batches."""

from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from compression import settings
from compression.errors import CompressionError
from compression.folders import files_digest, limit

CACHE_VERSION = 1  # part of every key: a change of how pixels are decoded or laid out invalidates old files
STREAM_VARIABLE = "COMPRESSION_STREAM_ABOVE_BYTES"
STREAM_ABOVE_BYTES = 2 << 30  # float32 splits larger than this stream from the cache instead of sitting in memory
WORKERS = min(2, os.cpu_count() or 1)  # DataLoader workers that decode a folder and read a streamed split ahead
PARALLEL_FROM = 512  # images: below this, starting workers costs more than decoding in the calling process
DISK_MARGIN = 256 << 20  # bytes left free on the cache's disk after writing one
CACHE_VARIABLE = "COMPRESSION_MAX_PIXEL_CACHE_BYTES"
MAX_CACHE_BYTES = 16 << 30  # decoded folders kept; the least recently used go first beyond this
ORPHAN_SECONDS = 3600  # a partial decode this old was left by a killed process


def cache_dir() -> Path:
    """Where decoded image folders are kept."""
    return settings.home() / "cache" / "pixels"


def cache_key(root: Path, samples: list[tuple[str, int]], image_size: tuple[int, int]) -> str:
    """A digest of what decoding `samples` at `image_size` produces: each file's path below `root`, class, size and
    modification time, so an edited, added or removed image gives a new key (and a fresh decode)."""
    return files_digest(root, samples, f"{CACHE_VERSION}|{image_size}|{Path(root).resolve()}")[:32]


class MappedPixels:
    """A read-only uint8 array (N, C, H, W) memory-mapped from a `.npy` file. Rows are copied out and the
    mapping's resident pages dropped after each read (they stay in the page cache, not in this process)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with self.path.open("rb") as f:
            if np.lib.format.read_magic(f) != (2, 0):  # the version decoded() writes
                raise CompressionError(f"{self.path} is not a decoded image cache")
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            offset = f.tell()
            if dtype != np.uint8 or fortran or len(shape) != 4:
                raise CompressionError(f"{self.path} is not a decoded image cache")
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.array = np.frombuffer(self._map, np.uint8, count=int(np.prod(shape)), offset=offset).reshape(shape)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    def rows(self, index: np.ndarray | slice) -> np.ndarray:
        """A copy of the rows at `index`."""
        out = np.array(self.array[index])
        self._map.madvise(mmap.MADV_DONTNEED)
        return out

    def __reduce__(self) -> tuple:  # a worker started by spawn maps the file afresh
        return MappedPixels, (self.path,)


class _Rows(Dataset):
    """The items of a DataLoader whose sampler yields whole batches of positions: each item is (images, positions)."""

    def __init__(self, images: StreamedImages) -> None:
        self.images = images

    def __getitem__(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[positions], positions


def _loader(dataset: Dataset, sampler: Iterable, workers: int, pin: bool = False) -> DataLoader:
    """A DataLoader over `sampler`'s items in order, each item one `dataset[...]` (no collation)."""
    return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=workers, pin_memory=pin,
                      prefetch_factor=2 if workers else None)


@dataclass(frozen=True)
class StreamedImages:
    """A split's images read from the cache when asked for: `index` picks its rows of `pixels`, which are scaled
    by `peak` and standardised with `mean`/`std` exactly as an in-memory split is. Indexed like a tensor of
    shape (N, C, H, W) by an int, a slice, positions or a boolean mask; always float32."""

    pixels: MappedPixels
    index: np.ndarray
    peak: float
    mean: torch.Tensor
    std: torch.Tensor
    dtype = torch.float32

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.index), *self.pixels.shape[1:]))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: int | slice | torch.Tensor | np.ndarray | list) -> torch.Tensor:
        key = key.numpy() if isinstance(key, torch.Tensor) else key
        rows = self.index[key]
        single = np.ndim(rows) == 0
        x = torch.from_numpy(self.pixels.rows(np.atleast_1d(rows))).float().div_(self.peak)
        x = x.sub_(self.mean.view(1, -1, 1, 1)).div_(self.std.view(1, -1, 1, 1))
        return x[0] if single else x

    def batches(self, order: torch.Tensor, batch_size: int, pin: bool = False) -> DataLoader:
        """(images, positions) for each `batch_size` run of `order`, read ahead by DataLoader workers."""
        return _loader(_Rows(self), runs(order, batch_size), WORKERS, pin)


def runs(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """`order` cut into consecutive batches of `batch_size` (the last may be shorter)."""
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def streams(images: int, shape: tuple[int, ...]) -> bool:
    """Whether `images` of `shape` as float32 are over the in-memory bound ($COMPRESSION_STREAM_ABOVE_BYTES)."""
    return images * int(np.prod(shape)) * 4 > limit(STREAM_VARIABLE, STREAM_ABOVE_BYTES)


def channel_statistics(pixels: MappedPixels, index: np.ndarray, peak: float,
                       chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (population; 1 where a channel is constant) of rows `index` scaled by `peak`,
    from exact per-value histograms read a chunk of rows at a time."""
    channels = pixels.shape[1]
    counts = np.zeros((channels, 256), dtype=np.int64)
    for start in range(0, len(index), chunk):
        rows = pixels.rows(np.sort(index[start:start + chunk]))
        for c in range(channels):
            counts[c] += np.bincount(rows[:, c].ravel(), minlength=256)
    values = np.arange(256) / peak
    total = counts.sum(1)
    mean = (counts * values).sum(1) / total
    var = (counts * (values[None, :] - mean[:, None]) ** 2).sum(1) / total
    std = np.where(var > 0, np.sqrt(var), 1.0)
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)


def _check_disk(folder: Path, size: int) -> None:
    """Refuse to write `size` bytes into `folder` when its disk would keep less than DISK_MARGIN free."""
    free = shutil.disk_usage(folder).free
    if size + DISK_MARGIN > free:
        raise CompressionError(f"imagefolder: decoding needs {size} bytes on disk for its cache in {folder}; "
                               f"only {free} are free")


def _rows_in_order(decoder: Dataset, count: int) -> Iterator[np.ndarray]:
    """decoder[0 … count-1], decoded by DataLoader workers for a large folder; an item that is a string is a
    decoder's one-line refusal, raised here (a worker's own exception would carry its traceback)."""
    workers = WORKERS if count >= PARALLEL_FROM else 0
    for item in _loader(decoder, range(count), workers):
        if isinstance(item, str):
            raise CompressionError(item)
        yield item.numpy() if isinstance(item, torch.Tensor) else item


def _evict(folder: Path, incoming: int) -> None:
    """Make room for `incoming` bytes within $COMPRESSION_MAX_PIXEL_CACHE_BYTES by deleting the least recently
    used decodes (a process that has one mapped keeps reading it), and delete partial decodes of killed runs."""
    now = time.time()
    for partial in folder.glob(".*.partial"):
        with contextlib.suppress(OSError):
            if now - partial.stat().st_mtime > ORPHAN_SECONDS:
                partial.unlink()
    entries = []
    for path in folder.glob("*.npy"):
        with contextlib.suppress(OSError):
            info = path.stat()
            entries.append((info.st_mtime, info.st_size, path))
    budget = limit(CACHE_VARIABLE, MAX_CACHE_BYTES) - incoming
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= budget:
            break
        with contextlib.suppress(OSError):
            path.unlink()
        total -= size


def decoded(key: str, decoder: Dataset, count: int, shape: tuple[int, int, int]) -> MappedPixels:
    """The cached decode `key` of `count` images of `shape`, written first if it is missing: rows decoded by
    `decoder[i]` (uint8 (C, H, W), or a string that refuses the file) streamed to a temporary file, which becomes
    the cache only once complete (a failed or killed decode leaves no cache behind). A cache folder that cannot
    be written (read-only, full disk) is one line."""
    folder = cache_dir()
    path = folder / f"{key}.npy"
    size = count * int(np.prod(shape))
    partial = folder / f".{key}.{os.getpid()}.partial"
    try:
        if path.is_file():
            os.utime(path)  # its time is its last use: what eviction goes by
            return MappedPixels(path)
        folder.mkdir(parents=True, exist_ok=True)
        _evict(folder, size)
        _check_disk(folder, size)
        with partial.open("wb") as f:
            np.lib.format.write_array_header_2_0(
                f, {"descr": "|u1", "fortran_order": False, "shape": (count, *shape)})
            for row in _rows_in_order(decoder, count):
                if row.shape != shape or row.dtype != np.uint8:
                    raise CompressionError(f"imagefolder: an image decoded to {row.shape}, not {shape}")
                f.write(np.ascontiguousarray(row).tobytes())
        os.replace(partial, path)
    except OSError as err:
        raise CompressionError(f"imagefolder: cannot write the decoded images to {folder} "
                               f"({err.strerror or type(err).__name__})") from None
    finally:
        with contextlib.suppress(OSError):  # none was made, or the folder is unusable; a leftover is an orphan
            partial.unlink()
    return MappedPixels(path)
