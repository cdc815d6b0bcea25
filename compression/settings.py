"""Where Compression Explorer keeps data sets, results and artifacts."""

import os
from pathlib import Path


def home() -> Path:
    """The data folder: $COMPRESSION_HOME, default ./.compression."""
    return Path(os.environ.get("COMPRESSION_HOME", ".compression")).resolve()


def data_dir() -> Path:
    """Where downloaded data sets live (torchvision's layout beneath it)."""
    return home() / "data"
