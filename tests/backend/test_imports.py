"""Bringing your own model: an ONNX file (a cnn trained on digits for real, exported by the project's exporter)
and torchvision weights (safetensors or a state-dict .pt) imported under a name, measured as given, then pruned,
quantized and distilled like a built-in model; and every bad file refused with one line, nothing stored, no
code run from it."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from torchvision import models as tvm

from compression import imports, pipeline
from compression.errors import CompressionError
from compression.export import export_onnx
from compression.imports import ImportRequest, import_model
from compression.recipe import DistillSpec, PruneSpec, QuantSpec, Recipe
from compression.store import Store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cnn_onnx(trained_cnn, digits, tmp_path) -> Path:
    """The digits cnn, trained for real, as the ONNX file a deployment pipeline would hand over."""
    return export_onnx(trained_cnn.eval(), digits.input_shape, tmp_path / "my-cnn.onnx")


def refused(request: ImportRequest, match: str) -> str:
    """Assert the import is refused with one line containing `match` and that nothing was stored."""
    with pytest.raises(CompressionError) as caught:
        import_model(request)
    message = str(caught.value)
    assert match in message and "\n" not in message, message
    assert imports.names() == [] and not list((Store().root / "artifacts").iterdir())
    return message


def image_folder(path: Path, classes: int = 3, per_class: int = 12, size: tuple[int, int] = (20, 24)) -> Path:
    rng = np.random.default_rng(0)
    for c in range(classes):
        (path / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = (rng.random((*size, 3)) * 60 + 90 * c).astype(np.uint8)
            Image.fromarray(pixels).save(path / f"class{c}" / f"{i}.png")
    return path


def test_an_onnx_model_is_measured_as_given_then_compressed_by_every_family(cnn_onnx, trained_cnn, digits, home):
    imported = import_model(ImportRequest(cnn_onnx, "mine", "digits"))
    assert (imported.source, imported.input_shape, imported.classes) == ("onnx", (1, 8, 8), 10)
    assert imports.names() == ["mine"] and Recipe(model="mine").epochs == 0  # measured as given: no training

    baseline = pipeline.run(Recipe(model="mine"))
    with torch.no_grad():
        expected = (trained_cnn(digits.test.x).argmax(1) == digits.test.y).float().mean().item()
    assert baseline.accuracy == pytest.approx(expected, abs=1e-6)  # the user's weights, not retrained
    assert baseline.accuracy > 0.9 and baseline.accuracy_source == "onnxruntime"

    pruned = pipeline.run(Recipe(model="mine", prune=PruneSpec("channel-l2", 0.5, finetune_epochs=1)))
    assert pruned.size_ratio_vs_baseline < 0.4 and pruned.flops_ratio_vs_baseline < 0.4
    int8 = pipeline.run(Recipe(model="mine", quant=QuantSpec("int8-static")))
    assert int8.size_ratio_vs_baseline < 0.35 and abs(int8.accuracy - baseline.accuracy) < 0.02
    student = pipeline.run(Recipe(model="mine", distill=DistillSpec(width=0.25, epochs=3, student="cnn")))
    assert student.distill.teacher_accuracy == pytest.approx(baseline.accuracy)
    assert student.params_total < baseline.params_total / 10
    qat = pipeline.run(Recipe(model="mine", quant=QuantSpec("fake", bits=4, qat_epochs=1)))
    assert qat.accuracy_source == "torch-simulated" and qat.accuracy > 0.5


def test_the_same_file_again_is_the_same_import_and_another_file_may_not_take_its_name(cnn_onnx, tmp_path):
    first = import_model(ImportRequest(cnn_onnx, "mine", "digits"))
    assert import_model(ImportRequest(cnn_onnx, "mine", "digits")) == first
    other = tmp_path / "other.onnx"
    export_onnx(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval(), (1, 8, 8), other)
    with pytest.raises(CompressionError, match="is imported already, from another file"):
        import_model(ImportRequest(other, "mine", "digits"))


@pytest.mark.slow
def test_torchvision_weights_import_from_safetensors_and_are_pruned_and_quantized(tmp_path, home):
    folder = image_folder(home / "data" / "pets")
    weights = tmp_path / "mobile.safetensors"
    save_file(tvm.mobilenet_v3_small(num_classes=3).state_dict(), str(weights))
    dataset = f"imagefolder:{folder}"
    imported = import_model(ImportRequest(weights, "mobile", dataset, "mobilenet_v3_small", (32, 32)))
    assert (imported.input_shape, imported.classes, imported.mean) == ((3, 32, 32), 3, imports.IMAGENET_MEAN)
    splits = pipeline.splits_for(Recipe(dataset=dataset, model="mobile"))
    assert splits.input_shape == (3, 32, 32) and splits.mean == pytest.approx(imports.IMAGENET_MEAN)  # its view

    baseline = pipeline.run(Recipe(dataset=dataset, model="mobile"))
    assert baseline.params_total == sum(p.numel() for p in tvm.mobilenet_v3_small(num_classes=3).parameters())
    int8 = pipeline.run(Recipe(dataset=dataset, model="mobile", quant=QuantSpec("int8-dynamic", calib_samples=16)))
    assert int8.size_ratio_vs_baseline < 0.4
    pruned = pipeline.run(Recipe(dataset=dataset, model="mobile",
                                 prune=PruneSpec("channel-l2", 0.3, finetune_epochs=0)))
    assert pruned.params_total < baseline.params_total


def test_a_state_dict_pt_loads_with_weights_only_and_wrong_shapes_are_one_line(tmp_path, home):
    folder = image_folder(home / "data" / "pets")
    good = tmp_path / "r18.pt"
    torch.save(tvm.resnet18(num_classes=3).state_dict(), good)
    dataset = f"imagefolder:{folder}"
    assert import_model(ImportRequest(good, "r18", dataset, "resnet18", (32, 32))).classes == 3

    wrong = tmp_path / "r18-5.safetensors"
    save_file(tvm.resnet18(num_classes=5).state_dict(), str(wrong))
    with pytest.raises(CompressionError, match=r"do not fit torchvision's resnet18 with 3 classes: size mismatch "
                                               r"for fc.weight"):
        import_model(ImportRequest(wrong, "r18b", dataset, "resnet18", (32, 32)))
    assert imports.names() == ["r18"]


class _Plant:
    """Unpickling this opens (creates) `marker` for writing: proof that a loader ran code from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_bad_model_files_are_one_line_and_store_nothing(cnn_onnx, tmp_path, home):
    data = cnn_onnx.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    refused(ImportRequest(truncated, "a", "digits"), "is not an ONNX model")

    external = tmp_path / "external" / "model.onnx"
    external.parent.mkdir()
    onnx.save_model(onnx.load(cnn_onnx), str(external), save_as_external_data=True, size_threshold=0)
    refused(ImportRequest(external, "a", "digits"), "keeps its weights in external data files")

    two = tmp_path / "two-inputs.onnx"

    class TwoInputs(nn.Module):
        def forward(self, x, y):
            return x.flatten(1) + y.flatten(1)
    torch.onnx.export(TwoInputs(), (torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)), str(two), dynamo=True)
    refused(ImportRequest(two, "a", "digits"), "has 2 graph inputs")

    marker = tmp_path / "marker"
    disguised = tmp_path / "weights.pt"
    disguised.write_bytes(pickle.dumps({"conv1.weight": _Plant(marker)}))
    refused(ImportRequest(disguised, "a", "digits", "resnet18", (8, 8)), "holds more than tensors")
    assert not marker.exists()  # never unpickled
    refused(ImportRequest(tmp_path / "weights.bin", "a", "digits", "resnet18"), "is not a file")
    refused(ImportRequest(cnn_onnx, "a", "digits", "alexnet-9000"), "is not a torchvision classification model")
    refused(ImportRequest(cnn_onnx, "cnn", "digits"), "is a built-in model")
    refused(ImportRequest(cnn_onnx, "../x", "digits"), "--name must be a letter")
    refused(ImportRequest(cnn_onnx, "a", "digits", mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2)),
            "--mean needs 1 value(s), one per input channel")


def test_a_model_that_does_not_fit_the_data_is_one_line_before_anything_is_stored(cnn_onnx, tmp_path, home):
    folder = image_folder(home / "data" / "pets")  # RGB images in 3 classes; the cnn takes 1×8×8 into 10
    message = refused(ImportRequest(cnn_onnx, "a", f"imagefolder:{folder}"), "takes 1×8×8 images into 10 classes")
    assert "has 3×8×8 images in 3 classes" in message


def test_the_cli_imports_then_every_command_takes_the_name(cnn_onnx, home):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "compression", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=300, env={**__import__("os").environ, "COMPRESSION_HOME": str(home)})
    done = cli("import", str(cnn_onnx), "--name", "mine", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["imported"]["name"] == "mine" and answer["baseline"]["model"] == "mine"
    quant = cli("run", "--model", "mine", "--quant", "int8-dynamic", "--json")
    assert quant.returncode == 0 and json.loads(quant.stdout)["baseline_accuracy"] == answer["baseline"]["accuracy"]
    again = cli("import", str(cnn_onnx.with_name("nowhere.onnx")), "--name", "other")
    assert again.returncode == 2 and again.stderr.strip().count("\n") == 0 and "is not a file" in again.stderr
    unknown = cli("run", "--model", "nobody")
    assert unknown.returncode == 2 and "unknown model 'nobody'" in unknown.stderr


def test_a_zip_of_class_folders_is_a_data_set_on_the_cli_and_a_hostile_one_is_one_line(tmp_path, home):
    import zipfile

    folder = image_folder(tmp_path / "pets")
    good, evil = tmp_path / "pets.zip", tmp_path / "evil.zip"
    with zipfile.ZipFile(good, "w") as archive:
        for image in sorted(folder.rglob("*.png")):
            archive.write(image, image.relative_to(tmp_path))
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../escaped/x.png", (folder / "class0" / "0.png").read_bytes())
    env = {**__import__("os").environ, "COMPRESSION_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "compression", "baseline", "--dataset", f"imagefolder:{good}",
                           "--epochs", "1", "--json"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["dataset"] == f"imagefolder:{good}"
    assert [p.name for p in (home / "data" / "zips").iterdir()]  # unpacked once, inside the data folder
    bad = subprocess.run([sys.executable, "-m", "compression", "baseline", "--dataset", f"imagefolder:{evil}"],
                         cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: zip: entry '../escaped/x.png'"), bad.stderr
    assert bad.stderr.count("\n") == 1 and not (tmp_path / "escaped").exists()


def _graph(path: Path, nodes, batch: int | str = "N") -> Path:
    """An ONNX file of `nodes` from an image input x (batch × 1 × 8 × 8) to scores y (batch × 10)."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 1, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[
        helper.make_tensor("shape", TensorProto.INT64, [2], [1, 64]),
        helper.make_tensor("w", TensorProto.FLOAT, [64, 10], [0.01] * 640)])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("example.custom", 1)]
    onnx.save_model(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


def test_a_graph_onnxruntime_cannot_run_or_with_its_batch_baked_in_is_one_line(tmp_path):
    from onnx import helper

    custom = _graph(tmp_path / "custom.onnx", [helper.make_node("Mystery", ["x"], ["f"], domain="example.custom"),
                                               helper.make_node("Reshape", ["f", "shape"], ["r"]),
                                               helper.make_node("MatMul", ["r", "w"], ["y"])])
    refused(ImportRequest(custom, "a", "digits"), "onnxruntime cannot run custom.onnx")
    baked = _graph(tmp_path / "baked.onnx", [helper.make_node("Reshape", ["x", "shape"], ["r"]),  # batch of 1 only
                                             helper.make_node("MatMul", ["r", "w"], ["y"])], batch=1)
    refused(ImportRequest(baked, "a", "digits"), "baked.onnx runs one image at a time only")


def test_an_onnx_files_mean_and_std_metadata_is_its_normalisation_unless_flags_give_one(cnn_onnx, tmp_path):
    model = onnx.load(cnn_onnx)
    onnx.helper.set_model_props(model, {"mean": "0.25", "std": "[0.5]"})
    declared = tmp_path / "declared.onnx"
    onnx.save(model, declared)
    imported = import_model(ImportRequest(declared, "declared", "digits"))
    assert (imported.mean, imported.std) == ((0.25,), (0.5,))
    assert pipeline.load_splits("digits", 0, pipeline.view_of(imported)).mean == [0.25]  # the data follows it
    given = import_model(ImportRequest(declared, "given", "digits", mean=(0.1,), std=(0.2,)))
    assert (given.mean, given.std) == ((0.1,), (0.2,))

    onnx.helper.set_model_props(model, {"mean": "0.1,0.2,0.3", "std": "1,1,1"})  # three channels for a grey model
    onnx.save(model, tmp_path / "wrong.onnx")
    refused_import = ImportRequest(tmp_path / "wrong.onnx", "wrong", "digits")
    with pytest.raises(CompressionError, match="metadata gives 3 'mean' value"):
        import_model(refused_import)
    onnx.helper.set_model_props(model, {"mean": "dark", "std": "1"})
    onnx.save(model, tmp_path / "text.onnx")
    with pytest.raises(CompressionError, match="metadata entry 'mean' is not a list of numbers"):
        import_model(ImportRequest(tmp_path / "text.onnx", "text", "digits"))
    assert imports.names() == ["declared", "given"]


def _with_op_onnx2torch_lacks(cnn_onnx: Path, path: Path) -> Path:
    """The digits cnn with LpNormalization on its scores (onnx2torch has no converter for it; each row is
    scaled by a positive number, so every prediction stays the cnn's)."""
    model = onnx.load(cnn_onnx)
    scores = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = ["raw" if name == scores else name for name in node.output]
    model.graph.node.append(onnx.helper.make_node("LpNormalization", ["raw"], [scores], axis=1, p=2))
    onnx.save(model, path)
    return path


def test_a_graph_torch_cannot_take_imports_runtime_only_and_keeps_the_runtimes_formats(cnn_onnx, trained_cnn, digits,
                                                                                        tmp_path, home):
    from compression.measure import onnx_counts, torch_counts

    lacking = _with_op_onnx2torch_lacks(cnn_onnx, tmp_path / "normalised.onnx")
    imported = import_model(ImportRequest(lacking, "graph", "digits"))
    assert "onnx2torch cannot convert" in imported.runtime_only and "LpNormalization" in imported.runtime_only
    assert "runtime-only" in imported.label() and "\n" not in imported.runtime_only

    baseline = pipeline.run(Recipe(model="graph"))
    with torch.no_grad():
        expected = (trained_cnn(digits.test.x).argmax(1) == digits.test.y).float().mean().item()
    assert baseline.accuracy == pytest.approx(expected, abs=1e-6) and baseline.latency_measured
    counted, reference = onnx_counts(lacking, digits.input_shape), torch_counts(trained_cnn, digits.input_shape)
    assert (counted.params_total, counted.flops) == (reference.params_total, reference.flops)  # one way of counting
    assert (baseline.params_total, baseline.flops, baseline.counts_source) == (
        reference.params_total, reference.flops, "onnx graph (Conv, Gemm, MatMul)")

    for mode, size_below in (("int8-static", 0.35), ("int8-dynamic", 0.35), ("fp16", 0.6)):
        result = pipeline.run(Recipe(model="graph", quant=QuantSpec(mode, calib_samples=128)))
        assert result.accuracy_source == "onnxruntime" and abs(result.accuracy - baseline.accuracy) < 0.02, mode
        assert result.size_ratio_vs_baseline < size_below and result.speedup_vs_baseline is not None, mode
        assert [s.stage for s in result.stages] == ["baseline", "quant"] and result.quant.layers == []
    int8 = pipeline.run(Recipe(model="graph", quant=QuantSpec("int8-static", calib_samples=128)))
    assert int8.quant.runs_integer and int8.from_store

    for recipe, what in ((Recipe(model="graph", prune=PruneSpec("channel-l2", 0.5)), "prune needs a torch form"),
                         (Recipe(model="graph", quant=QuantSpec("fake", bits=4)), "--quant fake needs a torch form"),
                         (Recipe(model="graph", quant=QuantSpec("int8-static", qat_epochs=1)), "QAT needs"),
                         (Recipe(model="graph", distill=DistillSpec(student="cnn")), "distill needs a torch form"),
                         (Recipe(model="cnn", distill=DistillSpec(student="graph")), "student graph runs in")):
        with pytest.raises(CompressionError, match=what) as caught:
            recipe.validate()
        assert "\n" not in str(caught.value)
    with pytest.raises(CompressionError, match="runs in onnxruntime only and has no torch form"):
        imports.build("graph", digits.input_shape, 10)
