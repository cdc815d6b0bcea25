"""Models users bring: an ONNX file, or a torchvision architecture with its weights (safetensors, or a state-dict
.pt/.pth of tensors only), imported into the store under a name and from then on used like a built-in model
(`--model NAME`). The imported model is the baseline, measured as given (never trained); every recipe
compresses it. An ONNX graph is converted to torch with onnx2torch, so pruning, distillation (as the teacher)
and QAT apply to it. A graph onnxruntime runs but that cannot be converted faithfully (an op onnx2torch lacks,
other outputs, no re-export) is imported *runtime-only*, with the reason: it keeps the runtime's own
post-training formats (int8-static, int8-dynamic, fp16), measured from the file itself. A graph onnxruntime
cannot run is refused at import with one line saying why.

Torch-free at import: the model registry's fallback (`family`) reads the store only; torch, onnx and onnx2torch
load when a model is imported or built."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compression.catalog import ModelFamily
from compression.errors import CompressionError
from compression.store import Store, StoreError

if TYPE_CHECKING:
    from torch import nn

    from compression.data import Splits

KIND = "import"  # the store's rows of imported models, keyed by name
SOURCE_ONNX = "model-source.onnx"
WEIGHTS = "weights.safetensors"
MAX_FILE_BYTES = 2 << 30  # an import is read into memory whole
CONVERTER_OPSET = 17  # the newest opset whose every op onnx2torch 1.5 converts
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's classification weights were trained on these
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_SIZE = 224
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_PARITY = 1e-3  # largest |torch − onnxruntime| / (1 + |onnxruntime|) a faithful conversion may show


@dataclass(frozen=True)
class Imported:
    """An imported model as the store keeps it: where it came from, what it takes (channels, height, width),
    its class count, and the normalisation its inputs need (None: the data set's own train statistics)."""

    name: str
    source: str  # "onnx" | "torchvision"
    arch: str | None  # the torchvision architecture; None for ONNX
    input_shape: tuple[int, int, int]
    classes: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    sha256: str  # of the file imported
    file: str  # its name, as the user gave it
    dataset: str  # the data set it was imported with (checked against it)
    runtime_only: str | None = None  # why the graph has no torch form (an ONNX file onnx2torch cannot convert)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Imported:
        known = {k: payload[k] for k in cls.__dataclass_fields__ if k in payload}
        return cls(**{**known, "input_shape": tuple(known["input_shape"]),
                      "mean": tuple(known["mean"]) if known["mean"] is not None else None,
                      "std": tuple(known["std"]) if known["std"] is not None else None})

    def label(self) -> str:
        """'imported ONNX model.onnx, 1×8×8, 10 classes'."""
        what = f"torchvision {self.arch} weights {self.file}" if self.source == "torchvision" else f"ONNX {self.file}"
        only = ", runtime-only (post-training formats)" if self.runtime_only else ""
        return f"imported {what}, {'×'.join(map(str, self.input_shape))}, {self.classes} classes{only}"


# ------------------------------------------------------------------------------ the registry's view (torch-free)

def stored(name: str, store: Store | None = None) -> Imported | None:
    """The model imported under `name` into `store` (default: the current one), if any."""
    try:
        row = (store or Store()).get(KIND, name)
    except StoreError:  # a store that cannot be opened: no imports (the command using it says why)
        return None
    return Imported.from_dict(row) if row is not None else None


def family(name: str) -> ModelFamily | None:
    """The model registry's entry of the model imported under `name` into the current store, if any."""
    found = stored(name)
    if found is None:
        return None
    return ModelFamily(name, found.label(), "compression.imports:build", imported=True, runtime_only=found.runtime_only)


def runtime_source(name: str, store: Store | None = None) -> Path | None:
    """The stored ONNX file of a runtime-only import `name` (what its baseline and conversions start from), or
    None for any other model."""
    store = store or Store()
    row = store.get(KIND, name)
    if row is None or not row.get("runtime_only"):
        return None
    return store.root / row["artifacts"][SOURCE_ONNX]


def names(store: Store | None = None) -> list[str]:
    """The names of the models imported into `store`, oldest first."""
    try:
        return [row["name"] for row in (store or Store()).list(KIND)]
    except StoreError:
        return []


@dataclass(frozen=True)
class Technique:
    """Whether a compression family applies to an imported model, and why (or why not), in words."""

    name: str
    applies: bool
    why: str


def techniques(imported: Imported) -> list[Technique]:
    """What every compression family can do with `imported`: all of them for a model with a torch form; the
    runtime's post-training formats only for a runtime-only ONNX graph, the reason said."""
    formats = "int8-static, int8-dynamic and fp16 by onnxruntime's quantization tools, from the ONNX file itself"
    if imported.runtime_only is None:
        torch_form = "torch form: converted by onnx2torch" if imported.source == "onnx" else "torchvision architecture"
        return [Technique("pruning", True, f"structured and unstructured, on its {torch_form}"),
                Technique("distillation", True, "as the teacher of a built-in student"),
                Technique("quantization", True, f"{formats.split(' by ')[0]} through its re-export; QAT and "
                                                "simulated bit widths in torch")]
    why = f"needs a torch form, and this graph has none ({imported.runtime_only})"
    return [Technique("pruning", False, why), Technique("distillation", False, why),
            Technique("quantization", True, f"{formats}; not QAT or simulated bit widths, which train in torch")]


# ------------------------------------------------------------------------------------------------ building

def build(name: str, input_shape: tuple[int, ...], classes: int) -> nn.Module:
    """A torch model of the import `name` with its weights, for inputs of `input_shape` and `classes` outputs
    (both must be the import's own: an imported model is not rebuilt for other data)."""
    store = Store()
    row = store.get(KIND, name)
    if row is None:
        raise CompressionError(f"no model imported as '{name}' in this store")
    found = Imported.from_dict(row)
    if found.runtime_only:
        raise CompressionError(f"'{name}' runs in onnxruntime only and has no torch form: {found.runtime_only}")
    if tuple(input_shape) != found.input_shape or classes != found.classes:
        raise CompressionError(f"model '{name}' takes {_shape(found.input_shape)} images and gives "
                               f"{found.classes} classes; the data has {_shape(input_shape)} and {classes}")
    if found.source == "onnx":
        return _torch_of_onnx(str(store.root / row["artifacts"][SOURCE_ONNX]), found.input_shape)
    weights = store.root / row["artifacts"][WEIGHTS]
    return _torchvision_model(found.arch, classes, _weights(weights, _read(weights)))


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


def _torch_of_onnx(path: str, input_shape: tuple[int, int, int]) -> nn.Module:
    """The ONNX file at `path` as a torch module (a fresh copy of a per-process cache: callers change it)."""
    import copy

    return copy.deepcopy(_converted(path, tuple(input_shape)))


@lru_cache(maxsize=4)
def _converted(path: str, input_shape: tuple[int, int, int]) -> nn.Module:
    import onnx

    return convert_onnx(onnx.load(path), input_shape)


def convert_onnx(model: Any, input_shape: tuple[int, int, int]) -> nn.Module:
    """An onnx ModelProto as a torch fx module with onnx2torch: brought to the converter's opset, each Reshape
    that flattens the features made an nn.Flatten (onnx2torch's Reshape keeps the exported size, which neither
    re-exports nor survives pruning). A CompressionError says what could not be converted."""
    import onnx
    import onnx.version_converter
    from onnx2torch import convert

    try:
        if _opset(model) > CONVERTER_OPSET:
            model = onnx.version_converter.convert_version(model, CONVERTER_OPSET)
        _drop_allowzero(model)
        module = convert(model)
    except Exception as exc:  # noqa: BLE001 - onnx2torch raises NotImplementedError, KeyError, … by op
        raise CompressionError(f"onnx2torch cannot convert this graph to torch: {_first_line(exc)}") from None
    return _flatten_reshapes(module.eval(), input_shape)


def _opset(model: Any) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _drop_allowzero(model: Any) -> None:
    """Reshape's allowzero=1 (the dynamo exporter writes it; onnx2torch refuses it) means nothing when the target
    shape is a constant without zeros: drop it there."""
    from onnx import numpy_helper

    constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        target = constants.get(node.input[1]) if node.op_type == "Reshape" and len(node.input) > 1 else None
        if target is None or (target == 0).any():
            continue
        for attribute in [a for a in node.attribute if a.name == "allowzero"]:
            node.attribute.remove(attribute)


def _flatten_reshapes(module: Any, input_shape: tuple[int, int, int]) -> nn.Module:
    """`module` with every Reshape to (-1, features of its input) replaced by nn.Flatten(1): the same values
    at the import's input shape, and a size that follows the channels pruning keeps."""
    import torch
    from onnx2torch.node_converters.reshape import OnnxReshape
    from torch import nn
    from torch.fx.passes.shape_prop import ShapeProp

    ShapeProp(module).propagate(torch.zeros(2, *input_shape))
    for node in list(module.graph.nodes):
        if node.op != "call_module" or not isinstance(module.get_submodule(node.target), OnnxReshape):
            continue
        source, target = node.args[0], node.args[1]
        if getattr(target, "op", None) != "get_attr":
            continue
        shape = _attribute(module, target.target)
        features = math.prod(source.meta["tensor_meta"].shape[1:])
        if isinstance(shape, torch.Tensor) and shape.tolist() == [-1, features]:
            module.add_submodule(node.target, nn.Flatten(1))
            node.args = (source,)
    module.graph.eliminate_dead_code()
    module.delete_all_unused_submodules()
    module.recompile()
    return module


def _attribute(module: Any, dotted: str) -> Any:
    """The object at the dotted attribute path `dotted` of `module` (a get_attr node's target), or None."""
    for part in dotted.split("."):
        module = getattr(module, part, None)
    return module


def _torchvision_model(arch: str, classes: int, state: dict[str, Any]) -> nn.Module:
    """torchvision's `arch` for `classes` outputs with the tensors of `state` (every one, of the right shape)."""
    from torchvision import models as tvm

    model = tvm.get_model(arch, weights=None, num_classes=classes)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        problem = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), _first_line(exc))
        raise CompressionError(f"the weights do not fit torchvision's {arch} with {classes} classes: "
                               f"{problem[:200]}") from None
    return model.eval()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


# ------------------------------------------------------------------------------------------------ importing

@dataclass(frozen=True)
class ImportRequest:
    """What `python -m compression import` is asked: the file, the name to import it as, the data set it is
    for, and what the file cannot say itself (a torchvision architecture; input size; normalisation)."""

    path: Path
    name: str
    dataset: str
    arch: str | None = None
    input_size: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


def import_model(request: ImportRequest, store: Store | None = None) -> Imported:
    """Check the file of `request` and import it into `store` under its name (nothing is stored if any check
    fails: each is one line). Importing the same file under the same name again is a no-op."""
    from compression.catalog import MODELS, check_dataset

    store = store or Store()
    check_dataset(request.dataset)
    _check_name(request.name, MODELS.names)
    data = _read(request.path)
    digest = hashlib.sha256(data).hexdigest()
    earlier = stored(request.name, store)
    if earlier is not None:
        if earlier.sha256 != digest:
            raise CompressionError(f"'{request.name}' is imported already, from another file: choose another name")
        return earlier
    with store.workdir() as tmp:
        if request.arch is None:
            imported, files = _import_onnx(request, data, digest, tmp)
        else:
            imported, files = _import_torchvision(request, data, digest, tmp)
        _check_fits_data(imported)
        store.put(KIND, request.name, {**asdict(imported), "model": request.name}, files)
    return imported


def _check_fits_data(imported: Imported) -> None:
    """Refuse, before anything is stored, a model whose input channels, size or class count the data set does
    not match (an image folder is resized to the model's size; other data sets have one size)."""
    splits = _splits_seen_by(imported)
    if tuple(splits.input_shape) != imported.input_shape or splits.num_classes != imported.classes:
        raise CompressionError(f"{imported.file} takes {_shape(imported.input_shape)} images into "
                               f"{imported.classes} classes; {imported.dataset} has {_shape(splits.input_shape)} "
                               f"images in {splits.num_classes} classes")


def _check_name(name: str, builtin: tuple[str, ...]) -> None:
    if not _NAME.fullmatch(name):
        raise CompressionError(f"--name must be a letter then up to 63 letters, digits, '_', '-' or '.', got {name!r}")
    if name in builtin:
        raise CompressionError(f"--name {name} is a built-in model: choose another name")


def _read(path: Path) -> bytes:
    """The bytes of the regular file at `path` (at most MAX_FILE_BYTES), or a one-line error."""
    try:
        if not path.is_file():
            raise CompressionError(f"{path} is not a file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CompressionError(f"{path} is larger than {MAX_FILE_BYTES >> 30} GiB")
        return path.read_bytes()
    except OSError as exc:
        raise CompressionError(f"cannot read {path} ({exc.strerror or type(exc).__name__})") from None


def _import_onnx(request: ImportRequest, data: bytes, digest: str, tmp: Path) -> tuple[Imported, dict[str, Path]]:
    """Check an ONNX file (self-contained, one image input, a batch dimension, runs in onnxruntime, converts to
    torch and back with the same outputs) and the Imported it makes, with the file to store."""
    import onnx

    if request.input_size is not None:
        raise CompressionError("--input-size is for --arch: an ONNX model's input size is read from the file")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends: not ONNX, or truncated
        raise CompressionError(f"{request.path.name} is not an ONNX model (truncated, or another format): "
                               f"{_first_line(exc)}") from None
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise CompressionError(f"{request.path.name} keeps its weights in external data files: save it as one "
                               "self-contained file (onnx.save_model(..., save_as_external_data=False))")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise CompressionError(f"{request.path.name} is not a valid ONNX model: {_first_line(exc)}") from None
    input_shape = _image_input(model, request.path.name)
    _make_batch_dynamic(model)
    path = tmp / SOURCE_ONNX
    onnx.save_model(model, str(path))
    classes = _check_runs(path, input_shape, request.path.name)
    runtime_only = _conversion_problem(model, path, input_shape)
    given = request.mean or request.std
    mean, std = (request.mean, request.std) if given else _metadata_normalisation(model, input_shape[0])
    imported = Imported(request.name, "onnx", None, input_shape, classes, mean, std, digest, request.path.name,
                        request.dataset, runtime_only)
    _check_normalisation(imported)
    return imported, {SOURCE_ONNX: path}


def _metadata_normalisation(model: Any, channels: int) -> tuple[tuple[float, ...] | None, ...]:
    """The input normalisation an ONNX file declares in its metadata, as `mean` and `std` entries of numbers for
    inputs in 0 … 1 ("0.485,0.456,0.406"; commas, spaces or a JSON list), else (None, None). An entry that is
    not one number per input channel is one line; _check_normalisation checks the rest."""
    props = {p.key.strip().lower(): p.value for p in model.metadata_props}

    def numbers(key: str) -> tuple[float, ...] | None:
        if key not in props:
            return None
        try:
            values = tuple(float(v) for v in re.split(r"[\s,]+", props[key].strip(" []")) if v)
        except ValueError:
            values = ()
        if not values or not all(math.isfinite(v) for v in values):
            raise CompressionError(f"the model's metadata entry '{key}' is not a list of numbers: "
                                   f"{props[key][:40]!r}; give --mean and --std instead")
        if len(values) != channels:
            raise CompressionError(f"the model's metadata gives {len(values)} '{key}' value(s) for {channels} input "
                                   f"channel(s); give --mean and --std instead")
        return values

    return numbers("mean"), numbers("std")


def _image_input(model: Any, file: str) -> tuple[int, int, int]:
    """The (channels, height, width) of the graph's one image input (N, C, H, W)."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise CompressionError(f"{file} has {len(inputs)} graph inputs: only models with one image input import")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise CompressionError(f"{file}'s input has {len(dims)} dimensions: an image model takes (batch, channels, "
                               "height, width)")
    fixed = [d.dim_value if d.HasField("dim_value") else None for d in dims[1:]]
    if None in fixed or min(fixed) < 1:
        raise CompressionError(f"{file}'s input has no fixed channels × height × width: export it with them fixed")
    return tuple(fixed)


def _make_batch_dynamic(model: Any) -> None:
    """Name the first dimension of the input and outputs 'batch', so that any batch size runs."""
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"


def _check_runs(path: Path, input_shape: tuple[int, int, int], file: str) -> int:
    """The class count of the model at `path`, once onnxruntime has run it on batches of 1 and 3."""
    import numpy as np
    import onnxruntime as ort

    outputs = []
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for n in (1, 3):
            outputs.append(session.run(None, {name: np.zeros((n, *input_shape), np.float32)})[0])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's errors have no common base
        if outputs:  # a batch of 1 ran: the graph fixes its batch size somewhere inside (a Reshape, …)
            raise CompressionError(f"{file} runs one image at a time only: its batch size is fixed inside the "
                                   f"graph; export it with a dynamic batch dimension") from None
        raise CompressionError(f"onnxruntime cannot run {file}: {_first_line(exc)}") from None
    if [o.shape[0] for o in outputs] != [1, 3] or any(o.ndim != 2 for o in outputs):
        raise CompressionError(f"{file} does not give one row of class scores per image for any batch size "
                               f"(output shape {outputs[1].shape} for a batch of 3)")
    return int(outputs[0].shape[1])


def _conversion_problem(model: Any, path: Path, input_shape: tuple[int, int, int]) -> str | None:
    """None if the graph converts to torch faithfully; else why not, once its float file is checked to make the
    deployable file the runtime-only baseline is measured from (one line if it does not)."""
    try:
        _check_conversion(model, path, input_shape)
    except CompressionError as exc:
        problem = str(exc)
    except Exception as exc:  # noqa: BLE001 - the converted module failing to run or to trace, by graph
        problem = f"the torch conversion of this graph does not run: {_first_line(exc)}"
    else:
        return None
    from compression.export import save_deployable

    try:
        save_deployable(path, path.with_name("deployable.onnx"))
    except Exception as exc:  # noqa: BLE001 - onnx's checker and shape inference raise their own errors
        raise CompressionError(f"{problem}; nor does the file pass onnx's full check as it is: "
                               f"{_first_line(exc)}") from None
    return problem


def _check_conversion(model: Any, path: Path, input_shape: tuple[int, int, int]) -> None:
    """Refuse a graph whose torch conversion gives other outputs than onnxruntime, or does not export again."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from compression.export import export_onnx

    module = convert_onnx(model, input_shape)
    x = torch.randn(3, *input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        converted = module(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    gap = float(np.max(np.abs(converted - reference) / (1 + np.abs(reference))))
    if not gap <= _PARITY:
        raise CompressionError(f"the torch conversion of this graph gives other outputs than onnxruntime "
                               f"(relative gap {gap:.2g}): it cannot be compressed faithfully")
    try:
        export_onnx(module, input_shape, path.with_name("reexport.onnx"))
    except Exception as exc:  # noqa: BLE001 - torch.export's errors by graph
        raise CompressionError(f"the torch conversion of this graph does not export to ONNX again: "
                               f"{_first_line(exc)}") from None


def _import_torchvision(request: ImportRequest, data: bytes, digest: str,
                        tmp: Path) -> tuple[Imported, dict[str, Path]]:
    """Check weights for torchvision's `request.arch` at the data set's class count and the Imported they make,
    with the weights to store (as safetensors: tensors only)."""
    from safetensors.torch import save_file
    from torchvision import models as tvm

    architectures = tvm.list_models(module=tvm)
    if request.arch not in architectures:
        raise CompressionError(f"--arch {request.arch} is not a torchvision classification model (e.g. "
                               "resnet18, resnet50, mobilenet_v3_small, efficientnet_b0)")
    state = _weights(request.path, data)
    size = request.input_size or (DEFAULT_SIZE, DEFAULT_SIZE)
    draft = Imported(request.name, "torchvision", request.arch, (3, *size), 0, request.mean or IMAGENET_MEAN,
                     request.std or IMAGENET_STD, digest, request.path.name, request.dataset)
    _check_normalisation(draft)
    imported = replace(draft, classes=_splits_seen_by(draft).num_classes)  # the data set's class count
    _torchvision_model(request.arch, imported.classes, state)  # refuses weights of another shape
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / WEIGHTS))
    return imported, {WEIGHTS: tmp / WEIGHTS}


def _weights(path: Path, data: bytes) -> dict[str, Any]:
    """The tensors of a .safetensors file, or of a state-dict .pt/.pth loaded with weights_only (anything but a
    dict of tensors is refused, never unpickled)."""
    import io
    import pickle

    import torch

    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load

        try:
            return load(data)
        except (SafetensorError, ValueError) as exc:
            raise CompressionError(f"{path.name} is not a readable safetensors file: {_first_line(exc)}") from None
    if path.suffix not in (".pt", ".pth"):
        raise CompressionError(f"{path.name}: weights must be .safetensors (preferred), .pt or .pth")
    try:
        state = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise CompressionError(f"{path.name} holds more than tensors, or is not a torch file: it is not loaded "
                               f"({_first_line(exc)[:120]})") from None
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CompressionError(f"{path.name} is not a state dict (a dict of parameter names to tensors)")
    return state


def _splits_seen_by(imported: Imported) -> Splits:
    """The splits of the import's data set as the model sees them (its input size and normalisation; its class
    count plays no part): loaded once per process for the import's checks and its baseline."""
    from compression import pipeline

    return pipeline.load_splits(imported.dataset, 0, pipeline.view_of(imported))


def _check_normalisation(imported: Imported) -> None:
    """Refuse a mean / std that does not give one value per input channel, or a std that is not positive."""
    channels = imported.input_shape[0]
    for label, values in (("--mean", imported.mean), ("--std", imported.std)):
        if values is not None and len(values) != channels:
            raise CompressionError(f"{label} needs {channels} value(s), one per input channel; got {len(values)}")
    if imported.std is not None and min(imported.std) <= 0:
        raise CompressionError("--std values must be positive")
    if (imported.mean is None) != (imported.std is None):
        raise CompressionError("give --mean and --std together")

