"""Bring your own model and data in the Workspace sidebar (ui/uploads.py), through Streamlit's AppTest and the
upload handlers the sidebar calls: a model imported into the store is a choice of the Model select box and,
chosen, is measured as given (no baseline epochs) into the sidebar's card; the job the Import button starts
imports and measures a real ONNX file; an uploaded zip of class folders is unpacked inside the data roots and the
Workspace trains on it; a hostile zip or a bad upload is one line.

AppTest cannot put a file into st.file_uploader: the handlers are called with the bytes an upload would give,
and the sidebar's choices set through session_state (tests/e2e/test_uploads_browser.py uploads in Chromium)."""

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from compression import folders, imports, settings
from compression.catalog import IMAGEFOLDER, MODELS
from compression.errors import CompressionError
from compression.export import export_onnx
from compression.imports import ImportRequest
from compression.models import build_model
from compression.recipe import Recipe
from compression.store import Store
from compression import tasks
from ui import uploads

from tests.app.test_hostile_app import FOLDER, start


def until_card(at: AppTest, timeout: float = 180) -> dict[str, str]:
    """Rerun `at` until the sidebar's baseline card shows (its baseline measured by the Workspace's own job)."""
    deadline = time.monotonic() + timeout
    while not at.sidebar.metric:
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert time.monotonic() < deadline, "the baseline card never showed"
        time.sleep(1)
        at.run()
    return {m.label: m.value for m in at.sidebar.metric}


def tiny_onnx(path: Path) -> Path:
    """A digits-shaped CNN (1×8×8 in, 10 classes out), untrained, exported for real."""
    return export_onnx(build_model("cnn", (1, 8, 8), 10).eval(), (1, 8, 8), path)


def png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def images_zip(extra: dict[str, bytes] | None = None, classes: int = 2, per_class: int = 12) -> bytes:
    """A real zip of `classes` class folders × `per_class` PNGs under one top folder, with `extra` entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for c in range(classes):
            for i in range(per_class):
                archive.writestr(f"pets/class{c}/{i}.png", png(40 + 90 * c + i))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_an_imported_model_is_a_choice_measured_as_given(tmp_path):
    imports.import_model(ImportRequest(tiny_onnx(tmp_path / "tiny.onnx"), "mine", "digits"))
    at = start()
    box = at.sidebar.selectbox(key="model")
    assert list(box.options) == [*MODELS.names, "mine"]  # built-ins first, then the imports
    assert "mine — imported ONNX tiny.onnx, 1×8×8, 10 classes" in box.help
    assert not at.sidebar.number_input(key="epochs").disabled  # a built-in model trains its baseline
    assert "Bring your own model" in [e.label for e in at.sidebar.expander]
    assert not [b for b in at.button if b.key == "upload_model_import"]  # nothing to import before an upload

    at.session_state["model"] = "mine"
    at.run()
    card = until_card(at)
    assert set(card) == {"Accuracy", "Size", "Latency", "FLOPs"} and card["Accuracy"].endswith("%")
    assert at.sidebar.selectbox(key="model").value == "mine"
    assert at.sidebar.number_input(key="epochs").disabled
    assert uploads.IMPORTED_NOTE in [c.value for c in at.sidebar.caption]
    stored = Store().get_result(Recipe(dataset="digits", model="mine").hash)
    assert stored is not None and stored.recipe["epochs"] == 0  # measured as given, never trained


def test_the_import_job_imports_the_upload_and_measures_its_baseline(tmp_path):
    """What the Import button runs: the upload written inside the store, then tasks.import_model on it."""
    store = Store()
    path = uploads.save_model(tiny_onnx(tmp_path / "tiny.onnx").read_bytes(), "../../My Model.onnx", store)
    assert path.is_relative_to(store.root / uploads.UPLOADS) and path.name == "My_Model.onnx"
    events = []
    tasks.import_model(ImportRequest(path, "brought", "digits"), 0, str(store.root), events.append)
    assert imports.stored("brought", store).label() == "imported ONNX My_Model.onnx, 1×8×8, 10 classes"
    result = store.get_result(Recipe(dataset="digits", model="brought").hash)
    assert result is not None and result.accuracy_source == "onnxruntime"
    assert events and events[0].stage == "import"
    assert "brought" in uploads.model_names(store)


def test_bad_model_uploads_and_settings_are_one_line(tmp_path):
    store = Store()
    with pytest.raises(CompressionError, match=r"^a model file is \.onnx, \.safetensors, \.pt or \.pth"):
        uploads.save_model(b"MZ", "tool.exe", store)
    assert uploads.numbers("", "mean") is None
    assert uploads.numbers(" 0.5, 0.25 ;0.125 ", "mean") == (0.5, 0.25, 0.125)
    for text in ("0.5, x", "nan", "1e999"):
        with pytest.raises(CompressionError, match="^std: give comma-separated numbers"):
            uploads.numbers(text, "std")
    garbage = uploads.save_model(b"not a model", "garbage.onnx", store)
    with pytest.raises(CompressionError) as refused:
        tasks.import_model(ImportRequest(garbage, "garbage", "digits"), 0, str(store.root), lambda event: None)
    assert "\n" not in str(refused.value) and "is not an ONNX model" in str(refused.value)
    assert imports.names(store) == []  # nothing stored


def test_an_uploaded_zip_is_unpacked_inside_the_data_roots_and_trained_on():
    data = images_zip()
    folder = uploads.unpack_images(data, "pets.zip")
    root = settings.data_roots()[0]
    assert settings.check_within_roots(folder, settings.data_roots()) == folder.resolve()
    assert folder.is_relative_to(root.resolve() / "zips")
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["class0", "class1"]
    assert all(len(list((folder / c).glob("*.png"))) == 12 for c in ("class0", "class1"))
    assert uploads.unpack_images(data, "again.zip") == folder  # unpacked once per content

    at = start(dataset_choice=FOLDER, imagefolder_path=str(folder))
    assert [e.label for e in at.sidebar.expander if e.label == "Bring your own images"]
    card = until_card(at)
    assert set(card) == {"Accuracy", "Size", "Latency", "FLOPs"}
    assert Store().get_result(folders.pinned(Recipe(dataset=IMAGEFOLDER + str(folder), epochs=1)).hash) is not None


def test_a_zip_with_an_entry_leaving_its_folder_is_one_line(tmp_path):
    root = settings.data_roots()[0]
    with pytest.raises(CompressionError) as refused:
        uploads.unpack_images(images_zip({"../evil.png": png(7)}), "evil.zip")
    message = str(refused.value)
    assert message.startswith("zip: ") and "\n" not in message, message
    assert not (root / "zips").exists() or not any((root / "zips").iterdir())  # nothing unpacked
    assert not (root / "evil.png").exists() and not (root.parent / "evil.png").exists()
