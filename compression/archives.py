"""Zip files of image folders, unpacked safely. The whole zip is checked before anything is written (names that
would leave the folder, links and devices, encryption, compression methods, the entry and size limits, zip bombs),
the bytes written are counted too, only image files are unpacked and each must open as an image, and a folder
appears only complete: it is unpacked beside its place, then renamed into it. Torch-free."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from PIL import Image

from compression.errors import CompressionError
from compression.folders import IMG_EXTENSIONS, limit

# What unpacking one zip may cost; each is raised by its environment variable, read at every unpack.
MAX_ZIP_ENTRIES = 60_000  # entries, folders and skipped files included: CIFAR-10's 50,000 images and room to spare
MAX_ZIP_BYTES = 2 << 30  # bytes the entries declare, and bytes actually written
MAX_ZIP_RATIO = 200  # uncompressed : compressed of one entry over RATIO_FLOOR: images ~1-10:1, a bomb's ~1000:1
RATIO_FLOOR = 1 << 20  # an entry up to 1 MiB may compress any amount: it cannot cost much
ZIP_ENTRIES_VARIABLE = "COMPRESSION_MAX_ZIP_ENTRIES"
ZIP_BYTES_VARIABLE = "COMPRESSION_MAX_ZIP_BYTES"
ZIP_RATIO_VARIABLE = "COMPRESSION_MAX_ZIP_RATIO"
# The decoders compression/data.py reads images with (its _IMAGE_FORMATS, tested equal; data.py imports torch)
IMAGE_FORMATS = ("BMP", "JPEG", "PNG", "PPM", "TIFF", "WEBP")
COMPLETE = ".complete"  # written last in an unpacked folder: where its class folders are, relative to it
ZIPS = "zips"  # the folder of the data root that unpacked zips live in, one folder per zip's content
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what zip tools write; LZMA may ask for a huge dictionary
_DRIVE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """The bounds of one unpack, from their environment variables."""

    entries: int = field(default_factory=lambda: limit(ZIP_ENTRIES_VARIABLE, MAX_ZIP_ENTRIES))
    size: int = field(default_factory=lambda: limit(ZIP_BYTES_VARIABLE, MAX_ZIP_BYTES))
    ratio: int = field(default_factory=lambda: limit(ZIP_RATIO_VARIABLE, MAX_ZIP_RATIO))


@dataclass
class Budget:
    """The bytes an unpack may write, counted as they are written: the sizes a zip declares can lie."""

    label: str
    most: int
    written: int = 0

    def spend(self, size: int) -> None:
        """Count `size` more bytes, or refuse them past the limit (before they are written)."""
        self.written += size
        if self.written > self.most:
            raise CompressionError(_too_big(self.label, self.most))


def is_archive(path: Path) -> bool:
    """Whether `path` is a zip to unpack: a regular file (through a symlink, too) whose name ends with .zip."""
    try:
        return path.name.lower().endswith(".zip") and stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def image_folder(path: Path) -> Path:
    """The class-folder root an ``imagefolder:PATH`` names: PATH itself, or, for a zip, its checked copy unpacked
    once into the data folder ($COMPRESSION_HOME/data/zips)."""
    from compression.settings import data_dir

    return dataset_folder(path, data_dir()) if is_archive(path) else path


def unpack(archive: Path, into: Path) -> Path:
    """Unpack the image files of the zip `archive` into the new folder `into` (an empty folder may stand there)
    and return the folder of its class folders: `into`, or the single top folder holding them all. Refused in one
    line, with nothing written, unless the whole zip passes every check."""
    with _opened(archive) as file:
        return _unpack(file, repr(archive.name), into, join=False)


def dataset_folder(archive: Path, data_root: Path) -> Path:
    """The folder of class folders the zip `archive` holds, unpacked once into `data_root`/zips/<its content's
    sha256, 16 hex>: a zip unpacked before is reused, and two processes unpacking it at once keep the first
    copy renamed into place (the other is discarded). A copy damaged since is unpacked again."""
    label = repr(archive.name)
    with _opened(archive) as file:
        target = data_root / ZIPS / _digest(file, label)
        found = _completed(target)
        if found is not None:
            return found
        if target.exists():
            _discard(target)
        file.seek(0)
        return _unpack(file, label, target, join=True)


@contextmanager
def _opened(archive: Path) -> Iterator[BinaryIO]:
    """`archive` opened for reading if it is a regular file: a FIFO or a device could block or never end, so it
    is opened non-blocking and refused."""
    label = repr(archive.name)
    try:
        fd = os.open(archive, os.O_RDONLY | os.O_NONBLOCK)
    except (OSError, ValueError) as err:
        raise CompressionError(f"zip: cannot read {label} ({type(err).__name__})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CompressionError(f"zip: {label} is not a regular file")
    with os.fdopen(fd, "rb") as file:
        yield file


def _digest(file: BinaryIO, label: str) -> str:
    """The first 16 hex digits of the sha256 of `file`'s bytes: the name of its unpacked folder."""
    try:
        return hashlib.file_digest(file, "sha256").hexdigest()[:16]
    except OSError as err:
        raise CompressionError(f"zip: cannot read {label} ({_reason(err)})") from None


def _completed(folder: Path) -> Path | None:
    """The class-folder root of `folder` if an unpack completed it (its marker names a root that is there)."""
    try:
        with open(folder / COMPLETE, encoding="utf-8") as marker:
            root = marker.read(4096)
        found = folder / root
        complete = (root == "." or _is_plain_name(root)) and found.is_dir()
    except (OSError, ValueError):
        return None
    return found if complete else None


def _is_plain_name(name: str) -> bool:
    """Whether `name` is one folder name (no separator, not '..', no control character)."""
    return name not in ("", ".", "..") and "/" not in name and "\\" not in name and not _has_control(name)


def _has_control(name: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in name)


def _unpack(file: BinaryIO, label: str, into: Path, join: bool) -> Path:
    """Unpack `file` into a new sibling of `into`, mark it complete and rename it into place; `join`: a complete
    copy that another process put there first is used instead. Nothing is left behind on any failure."""
    staging = _staging(into, label)
    try:
        root = _extract(file, label, staging)
        (staging / COMPLETE).write_text(root.as_posix(), encoding="utf-8")
        return _place(staging, into, join, label, root)
    except OSError as err:
        raise CompressionError(f"zip: cannot unpack {label} ({_reason(err)})") from None
    finally:
        _discard(staging)


def _staging(into: Path, label: str) -> Path:
    """A new, private folder beside `into` to unpack into."""
    try:
        into.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{into.name}.", suffix=".unpacking", dir=into.parent))
    except OSError as err:
        raise CompressionError(f"zip: cannot create a folder to unpack {label} into ({_reason(err)})") from None


def _place(staging: Path, into: Path, join: bool, label: str, root: PurePosixPath) -> Path:
    """Rename the unpacked `staging` to `into` in one step and return its class-folder root. When `into` is
    taken by a complete copy and `join`, that copy's root (`staging` is discarded by the caller), else a refusal."""
    try:
        staging.rename(into)
        return into / root
    except OSError:
        found = _completed(into) if join else None
        if found is not None:
            return found
        if into.exists():
            raise CompressionError(f"zip: cannot unpack {label} into {into.name!r}: it exists already") from None
        raise


def _discard(folder: Path) -> None:
    """Remove `folder`, renamed aside first so that its name is free at once."""
    aside = folder.with_name(f"{folder.name}.discarded-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        folder.rename(aside)
    except OSError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def _extract(file: BinaryIO, label: str, staging: Path) -> PurePosixPath:
    """Check the whole zip, then write its image files below `staging`, each checked to open as an image; where
    the class folders are, relative to `staging`."""
    limits = Limits()
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, EOFError, NotImplementedError, OSError, ValueError) as err:
        raise CompressionError(f"zip: {label} is not a zip file, or is truncated or damaged "
                               f"({type(err).__name__})") from None
    with archive:
        plan = _plan(archive, label, limits)
        budget = Budget(label, limits.size)
        for info, path in plan:
            _write(archive, info, staging / path, budget, label)
            _check_image(staging / path, info.filename, label)
    return _class_root([path for _, path in plan])


def _plan(archive: zipfile.ZipFile, label: str, limits: Limits) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """The image entries to unpack and their paths, once every entry of the zip passed its checks."""
    entries = archive.infolist()
    if len(entries) > limits.entries:
        raise CompressionError(f"zip: {label} holds more than {limits.entries} entries "
                               f"(the limit; set {ZIP_ENTRIES_VARIABLE} to raise it)")
    if sum(info.file_size for info in entries) > limits.size:
        raise CompressionError(_too_big(label, limits.size))
    plan = [(info, path) for info in entries if (path := _checked(info, label, limits)) is not None]
    if not plan:
        raise CompressionError(f"zip: {label} holds no image files (expected class folders of "
                               f"{', '.join(IMG_EXTENSIONS)} files)")
    return plan


def _checked(info: zipfile.ZipInfo, label: str, limits: Limits) -> PurePosixPath | None:
    """The path below the unpack folder of an entry to unpack, None for one to skip (a folder, a file that is
    no image, macOS's metadata), or a one-line refusal of an entry that is unsafe whether unpacked or not."""
    name = info.filename
    path = _safe_path(name, label)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise CompressionError(f"zip: entry {name!r} of {label} is a symbolic link (only files and folders "
                               f"are unpacked)")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise CompressionError(f"zip: entry {name!r} of {label} is a device, FIFO or socket (only files and "
                               f"folders are unpacked)")
    if info.flag_bits & 0x1:
        raise CompressionError(f"zip: entry {name!r} of {label} is encrypted (zip the images again without "
                               f"a password)")
    if info.compress_type not in _METHODS:
        raise CompressionError(f"zip: entry {name!r} of {label} is compressed with method {info.compress_type} "
                               f"(only stored and deflated entries are read)")
    if info.file_size > RATIO_FLOOR and info.file_size > limits.ratio * info.compress_size:
        raise CompressionError(f"zip: entry {name!r} of {label} is compressed more than {limits.ratio}:1, as a "
                               f"zip bomb is (the limit on entries over 1 MiB; set {ZIP_RATIO_VARIABLE} to raise it)")
    folder = name.endswith("/") or stat.S_ISDIR(mode)  # is_dir() fails on an empty name
    return None if folder or not _is_image_name(path) else path


def _safe_path(name: str, label: str) -> PurePosixPath:
    """The entry `name` as a path below the folder it unpacks to, or a one-line refusal of a name that could
    lead outside it (zip-slip) or break a one-line message."""
    problem = ("is an absolute path" if name.startswith("/") else
               "names a drive" if _DRIVE.match(name) else
               "holds a backslash" if "\\" in name else
               "has a '..' component" if ".." in name.split("/") else
               "holds a control character" if _has_control(name) else None)
    if problem:
        raise CompressionError(f"zip: entry {name!r} of {label} {problem}, so it could unpack outside its folder")
    return PurePosixPath(*(part for part in name.split("/") if part not in ("", ".")))


def _is_image_name(path: PurePosixPath) -> bool:
    """Whether an entry's path names an image file to unpack: an image extension, outside macOS's metadata
    (__MACOSX/ folders and ._ AppleDouble files, which carry image names but hold no images)."""
    return (path.name.lower().endswith(IMG_EXTENSIONS) and not path.name.startswith("._")
            and "__MACOSX" not in path.parts)


def _write(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: Budget, label: str) -> None:
    """Decompress one entry to the new file `target`, every byte counted against the budget before it is written."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as sink:
            for chunk in _chunks(archive, info, label):
                budget.spend(len(chunk))
                sink.write(chunk)
    except OSError as err:
        raise CompressionError(f"zip: cannot unpack entry {info.filename!r} of {label} ({_reason(err)})") from None


def _chunks(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> Iterator[bytes]:
    """The decompressed bytes of one entry, or a one-line refusal of an entry that cannot be read as declared
    (a bad CRC, a bad stream, a header that differs from the directory or points nowhere)."""
    try:
        with archive.open(info) as source:
            while chunk := source.read(_CHUNK):
                yield chunk
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError, ValueError) as err:
        kind = "zlib.error" if isinstance(err, zlib.error) else type(err).__name__
        raise CompressionError(f"zip: entry {info.filename!r} of {label} is damaged ({kind})") from None


def _check_image(file: Path, name: str, label: str) -> None:
    """Refuse an unpacked file that does not open as an image of the formats the loader decodes."""
    try:
        with Image.open(file, formats=IMAGE_FORMATS) as image:
            image.verify()
    except Exception as err:  # Pillow's plugins raise many types on hostile bytes; each is a refusal
        raise CompressionError(f"zip: entry {name!r} of {label} is not a {', '.join(IMAGE_FORMATS[:-1])} or "
                               f"{IMAGE_FORMATS[-1]} image ({type(err).__name__})") from None


def _class_root(paths: list[PurePosixPath]) -> PurePosixPath:
    """Where the class folders are: in the single top folder that holds them all (pets/cats/1.png), else at
    the top."""
    tops = {path.parts[0] for path in paths}
    if len(tops) == 1 and all(len(path.parts) > 2 for path in paths):
        return PurePosixPath(tops.pop())
    return PurePosixPath(".")


def _too_big(label: str, most: int) -> str:
    return f"zip: {label} unpacks to more than {most} bytes (the limit; set {ZIP_BYTES_VARIABLE} to raise it)"


def _reason(err: OSError) -> str:
    """An OS error in words without its path: 'No space left on device', else its type."""
    return err.strerror or type(err).__name__
