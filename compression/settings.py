"""Where Compression Explorer keeps data sets, results and artifacts, and which folders the web app may read."""

import os
from collections.abc import Sequence
from pathlib import Path

from compression.errors import CompressionError

DATA_ROOTS_VARIABLE = "COMPRESSION_DATA_ROOTS"
OUTSIDE_ROOTS = f"imagefolder: only folders inside the server's data roots can be read (set by {DATA_ROOTS_VARIABLE})"


def home() -> Path:
    """The data folder: $COMPRESSION_HOME, default ./.compression."""
    return Path(os.environ.get("COMPRESSION_HOME", ".compression")).resolve()


def data_dir() -> Path:
    """Where downloaded data sets live (torchvision's layout beneath it)."""
    return home() / "data"


def data_roots() -> list[Path]:
    """The folders the web app may read image folders from: $COMPRESSION_DATA_ROOTS (separated by os.pathsep),
    default the data folder alone. The CLI reads any path it is given."""
    listed = os.environ.get(DATA_ROOTS_VARIABLE, "").split(os.pathsep)
    return [Path(part).expanduser() for part in listed if part.strip()] or [data_dir()]


def check_within_roots(path: Path, roots: Sequence[Path]) -> Path:
    """`path` with its symlinks and '..' resolved, if that lies inside one of `roots` (resolved too): the only
    folders the web app lets a user read. Else a one-line error that tells nothing about the server's files:
    no path, and the same words whether `path` exists or not."""
    try:
        resolved = Path(path).resolve()
        inside = any(resolved.is_relative_to(Path(root).resolve()) for root in roots)
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a name too long: refused like any outside path
        inside = False
    if not inside:
        raise CompressionError(OUTSIDE_ROOTS)
    return resolved
