"""Names of everything a recipe can ask for, and their checks. Import-light on purpose (no torch), so
that the CLI can validate, hash and serve a stored result without loading the deep-learning stack."""

from pathlib import Path

from compression.errors import CompressionError

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "cifar10")
IMAGEFOLDER = "imagefolder:"
MODELS: tuple[str, ...] = ("cnn", "resnet", "mobilenet", "resnet18", "mobilenet_v3_small")
PRETRAINABLE: tuple[str, ...] = ("resnet18", "mobilenet_v3_small")
STAGES: tuple[str, ...] = ("distill", "prune", "quant")
PRUNE_METHODS: tuple[str, ...] = ("l1-unstructured", "global-unstructured", "channel-l1", "channel-l2", "activation")
STRUCTURED_METHODS: tuple[str, ...] = ("channel-l1", "channel-l2", "activation")
MAX_PRUNE_RATIO = 0.95
QUANT_MODES: tuple[str, ...] = ("fp32", "fp16", "int8-static", "int8-dynamic", "fake")
INT8_MODES: tuple[str, ...] = ("int8-static", "int8-dynamic")
QAT_MODES: tuple[str, ...] = ("int8-static", "fake")
QUANT_SCHEMES: tuple[str, ...] = ("asymmetric", "symmetric")
GRANULARITIES: tuple[str, ...] = ("per-channel", "per-tensor")
CALIBRATIONS: tuple[str, ...] = ("minmax", "entropy", "percentile")
MIN_BITS, MAX_BITS = 2, 16
MIN_WIDTH, MAX_WIDTH = 0.125, 1.0
MIN_TEMPERATURE, MAX_TEMPERATURE = 1.0, 20.0
WIDTH_MODELS: tuple[str, ...] = ("cnn", "resnet", "mobilenet")


def imagefolder_path(name: str) -> Path:
    """The folder named by ``imagefolder:PATH``."""
    return Path(name[len(IMAGEFOLDER):]).expanduser()


def check_dataset(name: str) -> None:
    """Raise CompressionError unless name is a known data set or imagefolder:PATH of an existing folder."""
    if name.startswith(IMAGEFOLDER):
        if not name[len(IMAGEFOLDER):].strip():
            raise CompressionError("imagefolder: give a folder, e.g. imagefolder:/data/my_images")
        path = imagefolder_path(name)
        if not path.exists():
            raise CompressionError(f"imagefolder: {path} does not exist")
        if not path.is_dir():
            raise CompressionError(f"imagefolder: {path} is not a directory")
        return
    if name not in DATASETS:
        choices = ", ".join((*DATASETS, "imagefolder:PATH"))
        raise CompressionError(f"unknown dataset {name!r}: choose one of {choices}")


def check_model(name: str, pretrained: bool = False) -> None:
    """Raise a one-line CompressionError for an unknown model or an impossible pretrained request."""
    if name not in MODELS:
        raise CompressionError(f"unknown model '{name}': choose one of {', '.join(MODELS)}")
    if pretrained and name not in PRETRAINABLE:
        raise CompressionError(f"model '{name}' has no pretrained weights: only {', '.join(PRETRAINABLE)} do")
