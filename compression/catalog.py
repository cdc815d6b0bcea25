"""Everything a recipe can ask for: the registries of prune methods, quantization modes and models (name, help,
capabilities, implementation), the data set names, the ranges each setting may take, and their checks.
Import-light on purpose (no torch), so that the CLI can validate, hash and serve a stored result without
loading the deep-learning stack. How to add a technique: docs/ARCHITECTURE.md."""

import os
from dataclasses import dataclass
from pathlib import Path

from compression.errors import CompressionError
from compression.registry import Entry, Registry


@dataclass(frozen=True)
class Bounds:
    """The range a numeric setting may take, and the step its slider moves by. Validation enforces `low` (and
    `high` where the setting has a hard limit); widgets offer low … high."""

    low: float
    high: float
    step: float = 1

    def text(self) -> str:
        """'0 … 0.95', '0 … 4,294,967,295'."""
        return " … ".join(f"{v:g}" if abs(v) < 1e6 else f"{int(v):,}" for v in (self.low, self.high))


# ------------------------------------------------------------------------------------------ pruning

@dataclass(frozen=True)
class PruneMethod(Entry):
    """A pruning criterion. Structured methods remove whole channels (torch-pruning; `implementation` builds
    the importance from the PruneSpec); unstructured ones zero single weights (`implementation` masks a list
    of layers by an amount). `norm` is the weight norm the live view ranks channels by; `scope` whether an
    unstructured cut is one threshold per layer or one across layers."""

    structured: bool = False
    norm: int = 2
    scope: str = "layer"
    uses_lambda: bool = False


PRUNE_METHODS: Registry[PruneMethod] = Registry("prune method", [
    PruneMethod("l1-unstructured", "smallest weights of each layer → zeros (gzip shrinks; dense FLOPs and latency "
                "do not)", "compression.prune:mask_each_layer"),
    PruneMethod("global-unstructured", "smallest weights under one threshold across layers → zeros",
                "compression.prune:mask_globally", scope="global"),
    PruneMethod("channel-l1", "whole filters / neurons with the smallest L1 norm, removed with their dependants",
                "compression.prune:magnitude_importance", structured=True, norm=1),
    PruneMethod("channel-l2", "whole filters / neurons with the smallest L2 norm, removed with their dependants",
                "compression.prune:magnitude_importance", structured=True, norm=2),
    PruneMethod("activation", "whole channels ranked by λ·weight magnitude + (1−λ)·mean activation",
                "compression.prune:activation_importance", structured=True, norm=2, uses_lambda=True),
])
MAX_PRUNE_RATIO = 0.95
PRUNE_RATIO = Bounds(0.0, MAX_PRUNE_RATIO, 0.05)
PRUNE_STEPS = Bounds(1, 5)  # widgets offer up to 5 rounds; the CLI takes any number
PRUNE_LAMBDA = Bounds(0.0, 1.0, 0.05)
EPOCH_CHOICES: tuple[int, ...] = (0, 1, 2, 3, 5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560)  # the lengths an
# epochs slider (and the search) offers: single steps where a few epochs matter, then doublings up to the longest
# fine-tuning cross-validated
ROUND_TO_CHOICES: tuple[int, ...] = (1, 8, 16)  # onnxruntime's convolutions like multiples of the SIMD block
ROUND_TO_AUTO = 0  # PruneSpec.round_to: per-layer counts chosen on the measured latency staircase (staircase.py)

# ------------------------------------------------------------------------------------- quantization

@dataclass(frozen=True)
class QuantMode(Entry):
    """A quantization format. `simulated`: exists only as a torch simulation (accuracy simulated, size
    computed, not timed), at any bit width; otherwise a file onnxruntime runs, made by `implementation`
    (float ONNX, spec, calibration images, folder) -> path. `integer`: int8 weights, checked to run integer
    kernels. `weight_bits`: the width a file stores weights at (None: a simulation, at the spec's bits).
    `activations`: whether activation ranges are calibrated ("always", "optional": on request, or "never").
    `uses_scheme` / `uses_granularity` / `uses_layout`: whether those settings apply; `mixed_precision`: whether a
    validation-drop bound can keep the most sensitive layers in float (compression/mixed.py)."""

    weight_bits: int | None = None
    simulated: bool = False
    integer: bool = False
    activations: str = "never"
    supports_qat: bool = False
    uses_scheme: bool = False
    uses_granularity: bool = False
    uses_layout: bool = False
    mixed_precision: bool = False


QUANT_MODES: Registry[QuantMode] = Registry("quantization mode", [
    QuantMode("fp32", "the float export unchanged: the reference (measured)", "compression.quantize:keep_float",
              weight_bits=32),
    QuantMode("fp16", "onnxruntime half-precision floats (measured)", "compression.quantize:convert_fp16",
              weight_bits=16),
    QuantMode("int8-static", "onnxruntime INT8 QDQ: int8 weights, activations calibrated on train images (measured)",
              "compression.quantize:convert_static", weight_bits=8, integer=True, activations="always", supports_qat=True,
              uses_scheme=True, uses_granularity=True, uses_layout=True, mixed_precision=True),
    QuantMode("int8-dynamic", "onnxruntime INT8 weights, activations quantized per batch at run time (measured)",
              "compression.quantize:convert_dynamic", weight_bits=8, integer=True, uses_granularity=True),
    QuantMode("fake", "simulated k-bit weights in torch (any width 2 … 16; accuracy simulated, size computed, not "
              "timed)", simulated=True, activations="optional", supports_qat=True, uses_scheme=True,
              uses_granularity=True),
])
QUANT_SCHEMES: tuple[str, ...] = ("asymmetric", "symmetric")
GRANULARITIES: tuple[str, ...] = ("per-channel", "per-tensor")
CALIBRATIONS: tuple[str, ...] = ("minmax", "entropy", "percentile")
# How an int8-static file is laid out for onnxruntime's CPU kernels (compression/layouts.py); auto times them all.
INT8_LAYOUTS: dict[str, str] = {
    "auto": "each layout below converted, timed interleaved against the float model and scored on validation: "
            "the fastest whose validation accuracy matches the plain conversion's is kept",
    "plain": "onnxruntime's quantize_static as it comes: every conv and matrix product in int8",
    "pad-channels": "the input padded with zero channels to a multiple of 4 (the Pad in float), so the first conv "
                    "takes onnxruntime's fast int8 kernel; predictions unchanged",
    "float-first": "the first conv and the activation and pooling after it kept in float (NCHWc), with "
                   "onnxruntime's QDQ propagation off for the file, so the rest runs in int8",
}
MIN_BITS, MAX_BITS = 2, 16
BITS = Bounds(MIN_BITS, MAX_BITS)
CALIB_SAMPLES = Bounds(1, 10_000, 32)
MAX_DROP = Bounds(0.0, 100.0, 0.1)  # mixed precision: validation accuracy points below the float model
QAT_EPOCHS = Bounds(0, 20)  # widgets offer up to 20 epochs; the CLI takes any number

# ------------------------------------------------------------------------------------- distillation

MIN_WIDTH, MAX_WIDTH = 0.125, 1.0
WIDTH = Bounds(MIN_WIDTH, MAX_WIDTH, 0.125)
MIN_TEMPERATURE, MAX_TEMPERATURE = 1.0, 20.0
TEMPERATURE = Bounds(MIN_TEMPERATURE, MAX_TEMPERATURE, 0.5)
ALPHA = Bounds(0.0, 1.0, 0.05)

# ------------------------------------------------------------------------------------------- models

@dataclass(frozen=True)
class ModelFamily(Entry):
    """A model architecture, built for any input shape and class count by `implementation`: (input shape,
    classes, width) for a `scalable` family (a width multiplier makes a distillation student), (input shape,
    classes, pretrained) otherwise. `pretrainable`: torchvision has pretrained weights for it."""

    scalable: bool = False
    pretrainable: bool = False
    imported: bool = False  # a user's model imported into the store (compression/imports.py): measured as given
    runtime_only: str | None = None  # why an imported ONNX graph has no torch form: post-training formats only


def _imported_model(name: str) -> ModelFamily | None:
    """The model imported into the current store under `name`, if any (the model registry's fallback)."""
    from compression import imports  # torch-free; the store's module, which reads the catalog

    return imports.family(name)


MODELS: Registry[ModelFamily] = Registry("model", [
    ModelFamily("cnn", "the article's small CNN: two conv + pool blocks (32, 64 channels), two dense layers",
                "compression.models:SmallCNN", scalable=True),
    ModelFamily("resnet", "a CIFAR-style ResNet-8: three stages of residual blocks (16, 32, 64 channels)",
                "compression.models:SmallResNet", scalable=True),
    ModelFamily("mobilenet", "a small MobileNetV2 of inverted-residual blocks (16 … 64 channels)",
                "compression.models:SmallMobileNet", scalable=True),
    ModelFamily("mlp-1200", "Hinton et al.'s big MNIST net: 2 hidden layers of 1200 ReLU units, dropout, 2-pixel "
                "jitter", "compression.models:hinton_teacher"),
    ModelFamily("mlp-800", "Hinton et al.'s small MNIST net: 2 hidden layers of 800 ReLU units, no regularisation",
                "compression.models:hinton_student"),
    ModelFamily("lenet-300-100", "LeNet-300-100 (Han et al.'s Deep Compression): hidden layers of 300 and 100 ReLU "
                "units", "compression.models:lenet_300_100"),
    ModelFamily("resnet18", "torchvision's ResNet-18 (pretrained ImageNet weights on request)",
                "compression.models:torchvision_resnet18", pretrainable=True),
    ModelFamily("mobilenet_v3_small", "torchvision's MobileNetV3-Small (pretrained ImageNet weights on request)",
                "compression.models:torchvision_mobilenet_v3_small", pretrainable=True),
], fallback=_imported_model)

# --------------------------------------------------------------------------------- data and training

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "cifar10")
# onnxruntime's execution providers latency may be timed on (--provider); accuracy is always scored on the CPU one.
PROVIDERS: dict[str, str] = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                             "tensorrt": "TensorrtExecutionProvider", "openvino": "OpenVINOExecutionProvider",
                             "coreml": "CoreMLExecutionProvider", "dml": "DmlExecutionProvider"}
# The runtimes a deployed file is measured in (--runtime): accuracy and latency both, so every figure names its runtime.
RUNTIMES: dict[str, str] = {"onnxruntime": "onnxruntime on the --provider (default)",
                            "openvino": "OpenVINO's CPU plugin (the openvino package; --provider cpu only)"}
IMAGEFOLDER = "imagefolder:"
STAGES: tuple[str, ...] = ("distill", "prune", "quant")
SEEDS = Bounds(0, 2**32 - 1)  # numpy's seeds are 32-bit
BASELINE_EPOCHS = Bounds(1, 200)  # the sidebar's range; the CLI also takes 0 (a pretrained model as it is)

# Hard limits of any recipe, from the CLI, a grid or the app: beyond them a run is a mistake or an attack (a
# server job that trains for a year), refused before any work.
MAX_EPOCHS = 10_000  # any training length: the longest fine-tuning ever cross-validated here is 2560
PATIENCE = Bounds(0, 200)  # plateau stop: epochs without a better validation loss; 0 trains the epochs given
MAX_BATCH = 4096
MAX_PRUNE_STEPS = 100
MAX_ROUND_TO = 1024
MAX_CALIB_SAMPLES = 100_000


def max_threads() -> int:
    """The most onnxruntime intra-op threads a recipe may time with: four per core of this machine."""
    return 4 * (os.cpu_count() or 1)


def imagefolder_path(name: str) -> Path:
    """The folder named by ``imagefolder:PATH``."""
    return Path(name[len(IMAGEFOLDER):]).expanduser()


def check_dataset(name: str) -> None:
    """Raise CompressionError unless name is a known data set or imagefolder:PATH of an existing folder."""
    if name.startswith(IMAGEFOLDER):
        if not name[len(IMAGEFOLDER):].strip():
            raise CompressionError("imagefolder: give a folder, e.g. imagefolder:/data/my_images")
        try:
            path = imagefolder_path(name)
            exists, is_dir = path.exists(), path.is_dir()
        except (OSError, RuntimeError) as err:  # a name too long, a ~user without a home
            raise CompressionError(f"imagefolder: cannot use that folder name ({type(err).__name__})") from None
        if not exists:
            raise CompressionError(f"imagefolder: {path} does not exist")
        if not is_dir and not path.name.lower().endswith(".zip"):
            raise CompressionError(f"imagefolder: {path} is neither a folder nor a .zip of class folders")
        return
    if name not in DATASETS:
        choices = ", ".join((*DATASETS, "imagefolder:PATH"))
        raise CompressionError(f"unknown dataset {name!r}: choose one of {choices}")


def check_model(name: str, pretrained: bool = False) -> None:
    """Raise a one-line CompressionError for an unknown model or an impossible pretrained request."""
    family = MODELS[name]
    if pretrained and not family.pretrainable:
        raise CompressionError(f"model '{name}' has no pretrained weights: only "
                               f"{', '.join(MODELS.where(pretrainable=True))} do")
