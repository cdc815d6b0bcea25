"""Bring your own model and data, in the Workspace sidebar: the Model select box's imported models, an uploaded
model file (ONNX, or torchvision weights) imported in a background job and measured as the baseline, and an
uploaded zip of class sub-folders unpacked inside the data roots as the workspace's image folder.

An upload is only written to a file (a temporary name, then renamed): the page never runs or unpickles it; the
backend checks it (compression/imports.py in the job's child process, compression/archives.py here). Torch-free."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import uuid
from pathlib import Path

import streamlit as st

from compression import archives, imports, settings, tasks
from compression.catalog import MODELS
from compression.errors import CompressionError
from compression.imports import ImportRequest
from compression.recipe import Recipe
from compression.store import Store
from ui import jobs

MODEL_TYPES = ("onnx", "safetensors", "pt", "pth")
WEIGHTS_TYPES = ("safetensors", "pt", "pth")  # weights need a torchvision architecture and an input size
ARCHITECTURES = ("resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
                 "efficientnet_b0", "efficientnet_b1", "regnet_y_400mf", "shufflenet_v2_x1_0", "squeezenet1_1",
                 "densenet121")  # common ones; any other torchvision name may be typed (the backend checks it)
IMPORTED_NOTE = "imported: measured as given"
UPLOADS = "uploads"  # the folder of the store (models) and of the first data root (zips) that uploads go to
ZIP_KEY = "upload_images_zip"
_ZIP_ERROR = "_upload_images_error"  # session state: the last zip upload's one-line error
_JUST_IMPORTED = "_upload_model_imported"  # session state: the model to select once its import job succeeded
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


# ------------------------------------------------------------------------------------- the Model select box

def model_names(store: Store) -> tuple[str, ...]:
    """The Model select box's options: the built-in models, then the models imported into `store`."""
    return (*MODELS.names, *(name for name in imports.names(store) if name not in MODELS))


def model_help(store: Store) -> str:
    """The Model select box's help: every built-in and imported model in words."""
    labels = [entry.label for entry in MODELS.entries]
    labels += [f"{name} — {found.label()}" for name in imports.names(store)
               if (found := imports.stored(name, store)) is not None]
    return "The base model every technique compresses: " + "; ".join(labels)


def imported_note(name: str, store: Store) -> str:
    """The sidebar's caption under an imported model: measured as given, and which techniques apply."""
    found = imports.stored(name, store)
    if found is None or found.runtime_only is None:
        return IMPORTED_NOTE
    return f"{IMPORTED_NOTE}; runtime-only: onnxruntime's post-training formats apply, not pruning, distillation or QAT"


def is_imported(name: str | None, store: Store) -> bool:
    """Whether `name` is a model imported into `store` (measured as given: it has no baseline epochs)."""
    return name is not None and name not in MODELS and imports.stored(name, store) is not None


def select_imported(store: Store) -> None:
    """Select the model this session has just imported, once its job succeeded (call before the Model select
    box: a widget's value cannot be set after it is drawn)."""
    name = st.session_state.get(_JUST_IMPORTED)
    job = jobs.find_job(_import_key(name)) if name else None
    if name is None or (job is not None and job.running):
        return
    del st.session_state[_JUST_IMPORTED]
    if job is not None and not job.error and name in model_names(store):
        st.session_state["model"] = name


# ------------------------------------------------------------------------------------------- a model file

def model_upload(dataset: str, store: Store) -> None:
    """The "Bring your own model" expander; its Import button imports the upload for `dataset` into `store` in a
    background job (followed below the expander), then selects it."""
    with st.expander("Bring your own model"):
        request = _import_form(dataset, store)
    if request is not None:
        _run_import(request, store)


def _import_form(dataset: str, store: Store) -> ImportRequest | None:
    """The upload's widgets; on a click of Import, the upload saved in `store` and the ImportRequest for it (None
    otherwise, or after a one-line error)."""
    upload = st.file_uploader("An ONNX model, or torchvision weights", type=list(MODEL_TYPES),
                              key="upload_model_file",
                              help="ONNX: one image input (N, C, H, W) with fixed C, H, W, self-contained. Weights: "
                                   "a state dict of tensors (.safetensors preferred; .pt/.pth are loaded tensors-only) "
                                   "for a torchvision architecture with the data set's class count.")
    if upload is None:  # the rest of the form once there is a file to import
        st.caption("It is checked, converted and measured as given on the workspace's data set.")
        return None
    weights = _suffix(upload.name) in WEIGHTS_TYPES
    arch, size = None, None
    if weights:
        arch = st.selectbox("torchvision architecture", ARCHITECTURES, key="upload_model_arch",
                            accept_new_options=True, help="Type another torchvision classification model's name "
                                                          "if it is not listed.")
        left, right = st.columns(2)
        size = (int(left.number_input("Input height", 1, 4096, imports.DEFAULT_SIZE, key="upload_model_height")),
                int(right.number_input("Input width", 1, 4096, imports.DEFAULT_SIZE, key="upload_model_width")))
    left, right = st.columns(2)
    mean = left.text_input("Mean (optional)", key="upload_model_mean", placeholder="0.485, 0.456, 0.406",
                           help="Per-channel mean of the inputs in 0 … 1 the model was trained with, comma-separated. "
                                "Empty: ImageNet's for weights; for ONNX the file's 'mean'/'std' metadata, else "
                                "the data set's own.")
    std = right.text_input("Std (optional)", key="upload_model_std", placeholder="0.229, 0.224, 0.225",
                           help="Per-channel standard deviation, with the mean.")
    name = st.text_input("Name", key="upload_model_name", placeholder="my-model", max_chars=64,
                         help="The name to choose it by (a letter, then letters, digits, '_', '-' or '.').")
    if not st.button("Import", key="upload_model_import", icon=":material/upload:"):
        return None
    try:
        path = save_model(upload.getvalue(), upload.name, store)
        return ImportRequest(path, name.strip() or _clean(Path(upload.name).stem), dataset, arch if weights else None,
                             size, numbers(mean, "mean"), numbers(std, "std"))
    except CompressionError as exc:
        st.error(str(exc))
        return None


def _run_import(request: ImportRequest, store: Store) -> None:
    """Import and measure `request` in a background job of this session, followed in a status box; its model is
    selected on the rerun after it succeeded, and any failure is its one line."""
    from ui import progress, workspace  # they import the Workspace, which imports this module

    try:
        workspace.check(Recipe(dataset=request.dataset))  # an image folder inside the data roots only
    except CompressionError as exc:
        st.error(str(exc))
        return
    st.session_state[_JUST_IMPORTED] = request.name
    seed = workspace.baseline_recipe().seed  # measured on the sidebar's split, so its card shows at once
    progress.run_in_status(f"Importing {request.path.name} as {request.name}", tasks.import_model, request, seed,
                           str(store.root), key=_import_key(request.name), stop_on_error=False)


def _import_key(name: str) -> str:
    return f"import:{name}"


def save_model(data: bytes, filename: str, store: Store) -> Path:
    """Write the uploaded model file's bytes inside `store` (uploads/<sha256, 16 hex>/<its name, made safe>) and
    return where: a file only, never loaded here."""
    suffix = _suffix(filename)
    if suffix not in MODEL_TYPES:
        raise CompressionError(f"a model file is .onnx, .safetensors, .pt or .pth, got {_clean(filename)!r}")
    return _write(store.root / UPLOADS / _sha16(data) / f"{_clean(Path(filename).stem)}.{suffix}", data)


def numbers(text: str, label: str) -> tuple[float, ...] | None:
    """The comma-separated finite numbers of a text field (None when it is empty), or a one-line error."""
    parts = [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        values = (math.nan,)
    if not all(math.isfinite(v) for v in values):
        raise CompressionError(f"{label}: give comma-separated numbers, e.g. 0.485, 0.456, 0.406")
    return values or None


# ------------------------------------------------------------------------------------------- a zip of images

def images_upload() -> None:
    """The "Bring your own images" expander: a zip of class sub-folders, unpacked on upload and made the
    workspace's image folder (or its one-line error)."""
    with st.expander("Bring your own images"):
        st.file_uploader("A zip of class sub-folders", type=["zip"], key=ZIP_KEY, on_change=_on_zip,
                         help="One sub-folder of images a class (PNG, JPEG, BMP, PPM, TIFF, WebP), possibly under "
                              "one top folder; unpacked once on the server, inside its data roots.")
        if error := st.session_state.get(_ZIP_ERROR):
            st.error(error)


def _on_zip() -> None:
    """The zip uploader's callback (before the script draws the folder field): unpack the upload and point the
    folder field at it."""
    upload = st.session_state.get(ZIP_KEY)
    st.session_state[_ZIP_ERROR] = None
    if upload is None:  # the upload was removed
        return
    try:
        folder = unpack_images(upload.getvalue(), upload.name)
    except CompressionError as exc:
        st.session_state[_ZIP_ERROR] = str(exc)
        return
    st.session_state["imagefolder_path"] = str(folder)


def unpack_images(data: bytes, filename: str = "images.zip") -> Path:
    """Write the uploaded zip's bytes inside the first data root (uploads/<sha256, 16 hex>/<its name, made safe>)
    and unpack it there (archives.dataset_folder, once per content): the folder of its class folders, inside the
    data roots. Anything refused is a one-line CompressionError ("zip: …")."""
    root = settings.data_roots()[0].resolve()
    path = _write(root / UPLOADS / _sha16(data) / f"{_clean(Path(filename).stem)}.zip", data)
    return archives.dataset_folder(path, root)


# ------------------------------------------------------------------------------------------------- files

def _write(target: Path, data: bytes) -> Path:
    """Write `data` to `target` under a temporary name, then rename it into place; OSError is one line."""
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(data)
        os.replace(temporary, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise CompressionError(f"the upload could not be saved on the server ({exc.strerror or type(exc).__name__})"
                               ) from None
    return target


def _sha16(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _suffix(filename: str) -> str:
    return Path(filename).suffix.lower().lstrip(".")


def _clean(name: str) -> str:
    """`name` with anything but letters, digits, '_', '-' and '.' made '_', at most 64 characters: a file name
    (never a path) that starts with a letter."""
    cleaned = _UNSAFE.sub("_", Path(name).name).strip("._-")[:64]
    return cleaned if cleaned[:1].isalpha() else f"m{cleaned}"[:64]
