"""Image folders as the loaders find them: a bounded walk of class sub-folders and their image files, and the
limits that bound reading a folder. Torch-free, so that the CLI refuses a folder it cannot use (a huge tree such
as /proc, a symlink loop, no images) before it loads the deep-learning stack; compression/data.py decodes what
the walk found."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from compression.catalog import IMAGEFOLDER, check_dataset, imagefolder_path
from compression.errors import CompressionError

if TYPE_CHECKING:
    from compression.recipe import Recipe

# What reading an image folder may cost; each is raised by its environment variable, read at every load.
MAX_ENTRIES = 100_000  # directory entries a walk visits: ends a walk of a huge tree (/proc, /) within a second or so
MAX_IMAGES = 50_000  # image files: CIFAR-10's training set; more is not a data set to train on a CPU here
MAX_PIXELS = 50_000_000  # pixels of one image before it is decoded (150 MB as RGB): a decompression bomb's guard
MAX_DATASET_BYTES = 8 << 30  # the whole set resized, as uint8: the pixel cache it fills on disk (large sets stream)
ENTRIES_VARIABLE = "COMPRESSION_MAX_ENTRIES"
IMAGES_VARIABLE = "COMPRESSION_MAX_IMAGES"
PIXELS_VARIABLE = "COMPRESSION_MAX_PIXELS"
DATASET_BYTES_VARIABLE = "COMPRESSION_MAX_DATASET_BYTES"
# The file names torchvision's ImageFolder reads (torchvision.datasets.folder.IMG_EXTENSIONS, tested equal)
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def limit(variable: str, default: int) -> int:
    """The bound the environment variable `variable` sets (a positive whole number), else `default`."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise CompressionError(f"{variable} must be a positive whole number, got {text[:40]!r}")
    return value


@dataclass
class FolderWalk:
    """A bounded walk of an image folder. Every directory entry and image file counts against a limit, each
    directory is entered once (by device and inode, so a symlink loop ends), and only regular files count as
    images: a FIFO, socket or device is never opened (reading one can block forever)."""

    root: Path
    max_entries: int = field(default_factory=lambda: limit(ENTRIES_VARIABLE, MAX_ENTRIES))
    max_images: int = field(default_factory=lambda: limit(IMAGES_VARIABLE, MAX_IMAGES))
    entries: int = 0
    images: int = 0
    visited: set[tuple[int, int]] = field(default_factory=set)

    def first_visit(self, info: os.stat_result) -> bool:
        """Whether the directory `info` describes is new to the walk (a symlink may lead back to one seen)."""
        key = (info.st_dev, info.st_ino)
        if key in self.visited:
            return False
        self.visited.add(key)
        return True

    def listing(self, folder: str) -> list[os.DirEntry]:
        """The entries of `folder`, each counted against the entry limit."""
        listed = []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    self.entries += 1
                    if self.entries > self.max_entries:
                        raise CompressionError(
                            f"imagefolder: {self.root} holds more than {self.max_entries} directory entries "
                            f"(the limit; set {ENTRIES_VARIABLE} to raise it)")
                    listed.append(entry)
        except OSError as err:
            raise CompressionError(f"imagefolder: cannot list {folder} ({type(err).__name__})") from None
        return listed

    def subfolder(self, entry: os.DirEntry) -> bool:
        """Whether `entry` is a directory (through a symlink, too) that the walk has not entered yet."""
        try:
            return entry.is_dir() and self.first_visit(entry.stat())
        except OSError as err:
            raise CompressionError(f"imagefolder: cannot list {entry.path} ({type(err).__name__})") from None

    def is_image(self, entry: os.DirEntry) -> bool:
        """Whether `entry` is an image file: an image extension on a non-empty regular file (through a symlink,
        too: the file it names is what would be read). /proc's files report size 0, so they are never opened."""
        if not entry.name.lower().endswith(IMG_EXTENSIONS):
            return False
        try:
            info = entry.stat()
        except OSError as err:
            raise CompressionError(f"imagefolder: cannot read image {entry.path} ({type(err).__name__})") from None
        if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
            return False
        self.images += 1
        if self.images > self.max_images:
            raise CompressionError(f"imagefolder: {self.root} holds more than {self.max_images} images "
                                   f"(the limit; set {IMAGES_VARIABLE} to raise it)")
        return True

    def class_folders(self) -> list[os.DirEntry]:
        """The immediate sub-directories of the root, sorted by name: one class each."""
        try:
            self.first_visit(self.root.stat())
        except OSError as err:
            raise CompressionError(f"imagefolder: cannot list {self.root} ({type(err).__name__})") from None
        return sorted((e for e in self.listing(str(self.root)) if self.subfolder(e)), key=lambda e: e.name)

    def images_below(self, folder: str) -> list[str]:
        """The image files below `folder`, at any depth, in torchvision's order: by folder, then by name."""
        found: list[tuple[str, str]] = []
        pending = [folder]
        while pending:
            current = pending.pop()
            for entry in self.listing(current):
                if self.subfolder(entry):
                    pending.append(entry.path)
                elif self.is_image(entry):
                    found.append((current, entry.name))
        return [os.path.join(parent, name) for parent, name in sorted(found)]


def scan(path: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """The class names of the image folder `path` and its (image file, class index) pairs, found by a bounded
    walk, or a one-line error: no class folders, no images, a class without images, fewer than two classes."""
    walk = FolderWalk(path)
    found = walk.class_folders()
    samples = [(file, label) for label, entry in enumerate(found) for file in walk.images_below(entry.path)]
    classes = [entry.name for entry in found]
    if not classes:
        raise CompressionError(
            f"imagefolder: no class folders in {path} (expected one sub-folder of images per class)")
    if not samples:
        raise CompressionError(f"imagefolder: no images found in the class folders of {path}")
    empty = sorted(set(classes) - {classes[label] for _, label in samples})
    if empty:
        raise CompressionError(f"imagefolder: class folders without images in {path}: {', '.join(empty)}")
    if len(classes) < 2:
        raise CompressionError(f"imagefolder: {path} has {len(classes)} class folder; need at least 2")
    return classes, samples


def files_digest(root: Path, samples: list[tuple[str, int]], prefix: str = "", times: bool = True) -> str:
    """sha256 (hex) of `prefix` and each sample's path below `root`, class and size, and (with `times`) its
    modification time: what changes when an image is added, removed, renamed, moved to another class or edited."""
    digest = hashlib.sha256(prefix.encode())
    for file, label in samples:
        info = os.stat(file)
        digest.update(f"\n{os.path.relpath(file, root)}|{label}|{info.st_size}"
                      f"{f'|{info.st_mtime_ns}' if times else ''}".encode())
    return digest.hexdigest()


def fingerprint(name: str) -> str:
    """The contents of the image folder ``imagefolder:PATH`` names, as 16 hex digits: a digest of its files'
    names, classes, sizes and modification times. A zip's copy is unpacked into a folder named by the zip's
    content digest, so there the folder's path stands for the content and unpacking again changes nothing."""
    from compression.archives import image_folder, is_archive

    path = imagefolder_path(name)
    root = image_folder(path)
    _, samples = scan(root)
    archive = is_archive(path)
    return files_digest(root, samples, str(root.resolve()) if archive else "", times=not archive)[:16]


def pinned(recipe: Recipe, known: dict[str, str] | None = None) -> Recipe:
    """`recipe` keyed by its image folder's contents as they are now (`Recipe.data_version`, the `fingerprint`),
    so that an edited folder gets new results and never serves stale ones; a recipe already pinned to other
    contents is refused in one line. Built-in data sets come back as given. `known` memoises fingerprints by data
    set name across the recipes of one grid."""
    if not recipe.dataset.startswith(IMAGEFOLDER):
        return recipe
    check_dataset(recipe.dataset)  # a missing folder named as such, before the walk would find it unlistable
    known = {} if known is None else known
    if recipe.dataset not in known:
        known[recipe.dataset] = fingerprint(recipe.dataset)
    current = known[recipe.dataset]
    if recipe.data_version not in (None, current):
        raise CompressionError(f"imagefolder: {imagefolder_path(recipe.dataset)} changed since this recipe was made "
                               "(images added, removed or edited): choose the folder again to measure it as it is now")
    return replace(recipe, data_version=current)


def preflight(datasets: Iterable[str]) -> None:
    """Walk the image folder of each `imagefolder:PATH` among `datasets` and refuse one that cannot be used, in
    about a second and before any work loads torch (the other names need no walk)."""
    from compression.archives import image_folder  # it reads this module's limits

    for name in sorted(set(datasets)):
        if name.startswith(IMAGEFOLDER):
            scan(image_folder(imagefolder_path(name)))
