"""Hostile input never crashes, hangs, leaks or runs code: image folders with symlink loops, FIFOs, huge trees and
decompression bombs; paths outside the web app's data roots; CIFAR batches and stage checkpoints that are
pickles asking to run code. Every probe is a real file on disk and a real load."""

import os
import pickle
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from compression import distill, folders, pipeline, settings
from compression.data import load_dataset
from compression.errors import CompressionError
from compression.models import build_model
from compression.prune import prune_model
from compression.recipe import DistillSpec, PruneSpec, QuantSpec, Recipe
from compression.result import StageRecord
from compression.settings import OUTSIDE_ROOTS, check_within_roots
from compression.store import Store

ROOT = Path(__file__).resolve().parents[2]
FAST = 2.0  # seconds a refusal may take


class _Plant:
    """Unpickling this opens (creates) `marker` for writing: proof that a loader ran code from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _one_line_error(call, *args, **kwargs) -> str:
    """The message of the CompressionError `call` raises; it must be one line."""
    with pytest.raises(CompressionError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message
    return message


def _images(folder: Path, count: int = 2, size: tuple[int, int] = (9, 7)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", size, (30 * i, 90, 200)).save(folder / f"{i}.png")


def _timed(call, *args, **kwargs) -> tuple[str, float]:
    """The one-line error `call` raises and the seconds it took."""
    started = time.perf_counter()
    message = _one_line_error(call, *args, **kwargs)
    return message, time.perf_counter() - started


def _looped_folder(root: Path) -> Path:
    """Two class folders whose sub-folders link back to the root, to themselves and to each other: a walk that
    follows links without remembering where it has been branches forever."""
    for name in ("a", "b"):
        (root / name / "deep").mkdir(parents=True)
        for i, target in enumerate((root, root / name, root / "a", root / "b")):
            os.symlink(target, root / name / "deep" / f"loop{i}")
    return root


# ------------------------------------------------------------------------------------- image-folder walk


def test_a_symlink_loop_ends_the_walk_fast_and_is_refused_in_one_line(tmp_path):
    folder = _looped_folder(tmp_path / "loops")
    message, seconds = _timed(load_dataset, f"imagefolder:{folder}")
    assert "no images found" in message and seconds < FAST


def test_images_beside_symlink_loops_load_once_each(tmp_path):
    folder = _looped_folder(tmp_path / "loops")
    _images(folder / "a" / "deep", 3)
    _images(folder / "b", 3)
    started = time.perf_counter()
    splits = load_dataset(f"imagefolder:{folder}", image_size=8)
    assert time.perf_counter() - started < FAST
    assert splits.classes == ["a", "b"] and len(splits.train.y) + len(splits.val.y) + len(splits.test.y) == 6


def test_the_walk_finds_images_at_any_depth_in_torchvisions_order(tmp_path):
    from torchvision import datasets, transforms
    from torchvision.datasets.folder import IMG_EXTENSIONS

    folder = tmp_path / "nested"
    for name in ("b", "a", "a-z"):
        for sub in ("", "x", "x/y", "x-y"):
            _images(folder / name / sub, 2)
    classes, samples = folders.scan(folder)
    reference = datasets.ImageFolder(str(folder), transform=transforms.PILToTensor())
    assert classes == reference.classes and samples == reference.samples  # what the splits are seeded on
    assert sorted(folders.IMG_EXTENSIONS) == sorted(IMG_EXTENSIONS)  # the same files count as images


def test_a_fifo_named_like_an_image_is_never_opened(tmp_path):
    folder = tmp_path / "pets"
    _images(folder / "cat", 3)
    _images(folder / "dog", 3)
    os.mkfifo(folder / "dog" / "x.png")  # opening it for reading would wait for a writer forever
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(load_dataset(f"imagefolder:{folder}", image_size=8)),
                              daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "reading the image folder hangs on a FIFO"
    splits = outcome[0]
    assert len(splits.train.y) + len(splits.val.y) + len(splits.test.y) == 6


def test_proc_and_a_symlink_loop_via_the_cli_are_one_line_exit_2_and_fast(tmp_path):
    started = time.perf_counter()
    message = _one_line_error(load_dataset, "imagefolder:/proc")
    assert time.perf_counter() - started < FAST and message.startswith("imagefolder:")

    loops = _looped_folder(tmp_path / "loops")
    env = {**os.environ, "COMPRESSION_HOME": str(tmp_path / "home")}
    # The CLI pays the interpreter and the torch stack before it reads a file: start a process that pays
    # exactly that beside the CLI runs, and time the refusals against it.
    start = [sys.executable, "-c", "import compression.__main__, compression.pipeline"]
    commands = {"start": start} | {name: [sys.executable, "-m", "compression", "baseline", "--dataset",
                                          f"imagefolder:{target}", "--epochs", "1"]
                                   for name, target in (("proc", "/proc"), ("loops", loops))}
    launched = {name: (time.perf_counter(), subprocess.Popen(command, cwd=ROOT, env=env, text=True,
                                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE))
                for name, command in commands.items()}
    runs = {}
    for name, (began, proc) in launched.items():
        out, err = proc.communicate(timeout=300)
        runs[name] = (time.perf_counter() - began, proc.returncode, out, err)
    assert runs["start"][1] == 0, runs["start"][3]
    for name in ("proc", "loops"):
        seconds, code, out, err = runs[name]
        assert code == 2 and out == "" and "Traceback" not in err, (name, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: imagefolder:"), (name, err)
        assert seconds - runs["start"][0] < FAST, (name, seconds, runs["start"][0])


@pytest.mark.parametrize(("variable", "value", "named"), [
    ("COMPRESSION_MAX_ENTRIES", "5", "more than 5 directory entries"),
    ("COMPRESSION_MAX_IMAGES", "3", "more than 3 images"),
])
def test_each_walk_limit_refuses_in_one_line_naming_its_variable(tmp_path, monkeypatch, variable, value, named):
    folder = tmp_path / "pets"
    _images(folder / "cat", 3)
    _images(folder / "dog", 3)
    load_dataset(f"imagefolder:{folder}", image_size=8)  # within the default limits
    monkeypatch.setenv(variable, value)
    message = _one_line_error(load_dataset, f"imagefolder:{folder}", image_size=8)
    assert named in message and variable in message


def test_the_decoded_size_is_refused_before_any_image_is_decoded(tmp_path, monkeypatch):
    folder = tmp_path / "pets"
    _images(folder / "cat", 2)
    _images(folder / "dog", 2)
    (folder / "dog" / "broken.png").write_bytes(b"not a png")  # decoding it would fail: it is never reached
    monkeypatch.setenv("COMPRESSION_MAX_DATASET_BYTES", str(5 * 3 * 16 * 16 - 1))
    message = _one_line_error(load_dataset, f"imagefolder:{folder}", image_size=16)
    assert "5 images" in message and "COMPRESSION_MAX_DATASET_BYTES" in message
    monkeypatch.setenv("COMPRESSION_MAX_DATASET_BYTES", str(5 * 3 * 16 * 16))
    assert "cannot read image" in _one_line_error(load_dataset, f"imagefolder:{folder}", image_size=16)


@pytest.mark.parametrize("size", [(5000, 5000), (1200, 1000)])  # Pillow's error, and its warning made an error
def test_a_decompression_bomb_is_refused_naming_the_file_and_the_variable(tmp_path, monkeypatch, size):
    folder = tmp_path / "pets"
    _images(folder / "cat", 2)
    _images(folder / "dog", 1)
    bomb = folder / "dog" / "bomb.png"
    Image.new("1", size).save(bomb)  # all zeros: a few kilobytes that decode to millions of pixels
    assert bomb.stat().st_size < 10_000
    monkeypatch.setenv("COMPRESSION_MAX_PIXELS", "1000000")
    message = _one_line_error(load_dataset, f"imagefolder:{folder}", image_size=8)
    assert str(bomb) in message and "1000000 pixels" in message and "COMPRESSION_MAX_PIXELS" in message
    if size == (1200, 1000):  # a real image, refused only by the limit
        monkeypatch.setenv("COMPRESSION_MAX_PIXELS", "2000000")
        load_dataset(f"imagefolder:{folder}", image_size=8)


def test_files_that_are_no_images_are_one_line_errors(tmp_path):
    folder = tmp_path / "pets"
    _images(folder / "cat", 2)
    _images(folder / "dog", 2)
    truncated = folder / "dog" / "0.png"
    truncated.write_bytes(truncated.read_bytes()[:40])
    assert f"cannot read image {truncated}" in _one_line_error(load_dataset, f"imagefolder:{folder}")
    _images(folder / "dog", 2)
    # PostScript named .png: Pillow picks a decoder by content, and its EPS decoder runs Ghostscript
    (folder / "dog" / "1.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    assert "UnidentifiedImageError" in _one_line_error(load_dataset, f"imagefolder:{folder}")


def test_a_limit_that_is_no_number_is_a_one_line_error(tmp_path, monkeypatch):
    _images(tmp_path / "pets" / "cat")
    _images(tmp_path / "pets" / "dog")
    monkeypatch.setenv("COMPRESSION_MAX_IMAGES", "lots\nof them")
    assert "COMPRESSION_MAX_IMAGES must be a positive whole number" in _one_line_error(
        load_dataset, f"imagefolder:{tmp_path / 'pets'}")


# ------------------------------------------------------------------------------------------- data roots


def test_data_roots_come_from_the_environment_else_the_data_folder(monkeypatch, tmp_path):
    assert settings.data_roots() == [settings.data_dir()]
    monkeypatch.setenv("COMPRESSION_DATA_ROOTS", os.pathsep.join([str(tmp_path / "a"), "", str(tmp_path / "b")]))
    assert settings.data_roots() == [tmp_path / "a", tmp_path / "b"]


def test_only_folders_inside_the_data_roots_are_accepted(tmp_path):
    roots = [tmp_path / "shared", tmp_path / "data"]
    inside, elsewhere = roots[1] / "pets", tmp_path / "elsewhere"
    inside.mkdir(parents=True)
    elsewhere.mkdir()
    (roots[1] / "outward").symlink_to(elsewhere)
    (roots[1] / "self-loop").symlink_to(roots[1] / "self-loop")
    assert check_within_roots(inside, roots) == inside.resolve()
    assert check_within_roots(roots[1] / "x" / ".." / "pets", roots) == inside.resolve()

    refused = [elsewhere, roots[1] / "outward", roots[1] / "outward" / "cat", roots[1] / ".." / "elsewhere",
               tmp_path / "nowhere" / "x", Path("/etc"), Path("/proc/self/root"), roots[1] / "self-loop",
               Path("relative/../../.."), roots[1] / "nul\x00byte"]
    for path in refused:
        message = _one_line_error(check_within_roots, path, roots)
        assert message == OUTSIDE_ROOTS, path  # the same words whether the path exists or not
    assert "/" not in OUTSIDE_ROOTS and "COMPRESSION_DATA_ROOTS" in OUTSIDE_ROOTS  # names no path of the server


# ----------------------------------------------------------------------------------------- CIFAR batches


def _cifar_folder(root: Path, first_batch: bytes) -> Path:
    """A CIFAR-10 folder of real tiny batches, the first train batch replaced by `first_batch`."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"):
        batch = {"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8), "labels": list(range(10)),
                 "batch_label": name, "filenames": [f"{i}.png" for i in range(10)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(c) for c in range(10)]}, protocol=2))
    (folder / "data_batch_1").write_bytes(first_batch)
    return folder


def test_a_cifar_batch_that_asks_to_run_code_is_refused_and_nothing_runs(tmp_path):
    probe, marker = tmp_path / "probe", tmp_path / "marker"
    pickle.loads(pickle.dumps(_Plant(probe), protocol=2)).close()
    assert probe.exists()  # the plant is a live exploit for a plain unpickler
    batch = {"data": np.zeros((10, 3072), np.uint8), "labels": list(range(10)), "x": _Plant(marker)}
    folder = _cifar_folder(tmp_path, pickle.dumps(batch, protocol=2))
    message = _one_line_error(load_dataset, "cifar10", root=tmp_path, download=False)
    assert f"{folder / 'data_batch_1'} is not a CIFAR-10 batch: it asks to load 'io.open'" in message
    assert not marker.exists()


class _Huge:
    """Unpickling this asks numpy for an array of a terabyte, by `make` (numpy.ndarray or its reconstruction)."""

    def __init__(self, make) -> None:
        self.make = make

    def __reduce__(self):
        return (self.make, ((10**12,), "u1")) if self.make is np.ndarray else (self.make, (np.ndarray, (10**12,), b"b"))


@pytest.mark.parametrize("content", [
    pickle.dumps(_Huge(np.ndarray), protocol=2), pickle.dumps(_Huge(np.empty(0).__reduce__()[0]), protocol=2),
    b"\x80\x02}q\x00(", b"not a pickle", pickle.dumps([1, 2], protocol=2),
    pickle.dumps({"data": np.zeros((10, 5), np.uint8), "labels": [0] * 10}, protocol=2),
    pickle.dumps({"data": np.zeros((10, 3072), np.uint8), "labels": [10] * 10}, protocol=2),
])
def test_malformed_cifar_batches_are_one_line_errors(tmp_path, content):
    _cifar_folder(tmp_path, content)
    message = _one_line_error(load_dataset, "cifar10", root=tmp_path, download=False)
    assert message.startswith("cifar10:") and "data_batch_1" in message


# ------------------------------------------------------------------------------------- stage checkpoints


def _record(stage: str) -> StageRecord:
    return StageRecord(stage=stage, accuracy=0.5, accuracy_source="onnxruntime", size_bytes=1, size_source="onnx file",
                       params_nonzero=1, flops=1, seconds=0.0)


def _round_trip(store: Store, saved: torch.nn.Module, saver: Recipe, loader: Recipe, index: int, digits,
                tmp_path: Path) -> torch.nn.Module:
    """Store `saved` as `saver`'s checkpoint after stage `index`, load it as `loader`'s (the same prefix), check the
    stored file is tensors only and the outputs are the same; return the loaded model."""
    key = saver.stage_key(index)
    assert loader.stage_key(index) == key
    pipeline._save_checkpoint(store, key, saver, saved, _record(saver.stages[index]), None, tmp_path)
    stored = store.get("checkpoint", key)
    assert list(stored["artifacts"]) == [pipeline.CHECKPOINT]
    tensors = torch.load(store.root / stored["artifacts"][pipeline.CHECKPOINT], weights_only=True)
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    loaded, record, _ = pipeline._load_checkpoint(store, key, loader, index, digits)
    assert record == _record(saver.stages[index])
    x = digits.test.x[:64]
    with torch.no_grad():
        assert torch.equal(loaded(x), saved.eval()(x))
    return loaded


def test_a_structurally_pruned_checkpoint_round_trips_as_tensors(home, digits, tmp_path):
    spec = PruneSpec("channel-l2", 0.5, finetune_epochs=0)
    model = build_model("mobilenet", digits.input_shape, digits.num_classes)  # depthwise convs, batch norms
    prune_model(model, spec, digits, seed=0)
    loaded = _round_trip(Store(), model, Recipe(model="mobilenet", prune=spec),
                         Recipe(model="mobilenet", prune=spec, quant=QuantSpec("fake", bits=4)), 0, digits, tmp_path)
    unpruned = build_model("mobilenet", digits.input_shape, digits.num_classes)
    assert pipeline.layer_shapes(loaded) == pipeline.layer_shapes(model) != pipeline.layer_shapes(unpruned)
    assert any(isinstance(m, torch.nn.Conv2d) and 1 < m.groups == m.out_channels for m in loaded.modules())


def test_a_distilled_and_pruned_student_round_trips_as_tensors(home, digits, trained_cnn, tmp_path):
    spec, prune = DistillSpec(width=0.5, epochs=1, patience=0), PruneSpec("channel-l1", 0.5, finetune_epochs=0)
    student = distill.trained_student("cnn", trained_cnn, digits.train, spec, 0, digits.input_shape,
                                      digits.num_classes)
    store, saver = Store(), Recipe(distill=spec, prune=prune)
    _round_trip(store, student, saver, Recipe(distill=spec), 0, digits, tmp_path)
    prune_model(student, prune, digits, seed=0)
    loaded = _round_trip(store, student, saver, Recipe(distill=spec, prune=prune, quant=QuantSpec("fake")), 1,
                         digits, tmp_path)
    assert loaded.features[0].out_channels == 8  # the student's 16 filters, halved


def test_planted_pickles_under_checkpoint_rows_are_never_run_and_the_stages_are_recomputed(home, tmp_path):
    marker, plant = tmp_path / "marker", tmp_path / "plant"
    plant.write_bytes(pickle.dumps(_Plant(marker), protocol=2))
    store = Store()
    base = pipeline.run(Recipe(epochs=1), store)
    old, new = (Recipe(epochs=1, quant=QuantSpec("fake", bits=bits)) for bits in (8, 6))
    for recipe, name in ((old, pipeline.PICKLED_CHECKPOINT), (new, pipeline.CHECKPOINT)):  # an old row; a forged one
        row = {"dataset": recipe.dataset, "model": recipe.model, "record": asdict(_record("quant")), "report": None,
               "layer_shapes": {}}
        store.put("checkpoint", recipe.stage_key(0), row, {name: plant})

    results = [pipeline.run(recipe, store) for recipe in (old, new)]

    assert not marker.exists()
    for recipe, result in zip((old, new), results):
        assert "quant" in result.stage_seconds and result.stages[1] != _record("quant")  # computed anew
        assert list(store.get("checkpoint", recipe.stage_key(0))["artifacts"]) == [pipeline.CHECKPOINT]
    assert sorted(q["key"] for q in store.quarantined()) == sorted(r.stage_key(0) for r in (old, new))
    shared = pipeline.run(Recipe(epochs=1, quant=QuantSpec("fake", bits=8), order=("quant", "prune"),
                                 prune=PruneSpec("channel-l2", 0.5, finetune_epochs=0)), store)
    assert "quant" not in shared.stage_seconds and shared.stages[1] == results[0].stages[1]  # served as tensors
    assert shared.params_total < base.params_total
