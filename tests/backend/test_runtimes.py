"""A second runtime (--runtime openvino): a real digits cnn, its int8-static file and its fp32 baseline measured
in OpenVINO's CPU plugin — accuracy on the test and validation splits, latency interleaved — beside the same
recipe in onnxruntime; every figure names its runtime; the default recipe's hash and import path unchanged; a bad
runtime is one line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from compression import measure, pipeline, profile
from compression.errors import CompressionError
from compression.recipe import QuantSpec, Recipe
from compression.store import Store

ROOT = Path(__file__).resolve().parents[2]
INT8 = Recipe(epochs=5, quant=QuantSpec("int8-static", calib_samples=64))
ON_OPENVINO = Recipe(epochs=5, quant=QuantSpec("int8-static", calib_samples=64), runtime="openvino")


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "compression", *args], cwd=ROOT, text=True, capture_output=True,
                          timeout=300, env={**os.environ, "COMPRESSION_HOME": str(home)})


def test_default_recipes_keep_their_hashes_and_the_runtime_is_a_recipe_of_its_own():
    # literal hashes of main before the runtime field: stored results keep their keys
    assert Recipe().hash == "0209bbc781c5f015" and Recipe(epochs=5).hash == "e43e7e0a11905bfe"
    # int8-static recipes got new keys with the INT8 layout field (test_layouts.py); the runtime field changed none
    assert INT8.hash == "b0ead8cc757d0e80" and "runtime" not in INT8.to_dict()
    assert ON_OPENVINO.hash != INT8.hash and ON_OPENVINO.to_dict()["runtime"] == "openvino"
    assert Recipe.from_dict(ON_OPENVINO.to_dict()) == ON_OPENVINO
    assert ON_OPENVINO.baseline().runtime == "openvino"  # the baseline is measured in the same runtime
    with pytest.raises(CompressionError, match="unknown runtime 'tensorrt': choose one of onnxruntime, openvino"):
        Recipe(runtime="tensorrt").validate()
    with pytest.raises(CompressionError, match="--provider cuda is onnxruntime's"):
        Recipe(runtime="openvino", provider="cuda").validate()


@pytest.mark.slow
def test_int8_and_its_baseline_are_measured_in_openvino_close_to_onnxruntime(home, digits):
    store = Store(home)
    ov, ort = pipeline.run(ON_OPENVINO, store), pipeline.run(INT8, store)
    base = store.get_result(ON_OPENVINO.baseline().hash)
    for result in (ov, base):  # accuracy, latency and provenance all say OpenVINO
        assert result.accuracy_source == "openvino" and result.provenance.runtime.startswith("openvino 2026.")
        assert result.provenance.versions["openvino"].startswith("2026.")
        assert result.latency_measured and result.latency_ms.p50 > 0 and result.latency_ms.cpu_p50 > 0
        assert result.latency_ms_single.batch == 1 and result.latency_ms.runs >= 100
    assert ov.baseline_latency_ms.p50 > 0 and ov.speedup_vs_baseline > 0  # timed interleaved with the baseline
    assert ov.baseline_accuracy == base.accuracy
    assert ort.accuracy_source == "onnxruntime" and ort.provenance.runtime.startswith("onnxruntime ")
    assert abs(ov.accuracy - ort.accuracy) <= 0.01 and abs(ov.val_accuracy - ort.val_accuracy) <= 0.01
    onnx = store.path(ov, "model.onnx")  # the same int8 QDQ file, run as int8 by both
    agree = (measure.onnx_logits(onnx, digits.test.x, runtime="openvino").argmax(1)
             == measure.onnx_logits(onnx, digits.test.x).argmax(1)).mean()
    assert agree >= 0.98
    simulated = pipeline.run(Recipe(epochs=5, quant=QuantSpec("fake", bits=4), runtime="openvino"), store)
    assert not simulated.latency_measured and simulated.accuracy_source == "torch-simulated"
    with pytest.raises(CompressionError, match="measured in openvino: the profile is onnxruntime's"):
        profile.profile_result(store, ov.recipe_hash)


def test_a_bad_or_missing_runtime_is_one_line(home, monkeypatch):
    done = cli(home, "baseline", "--runtime", "tensorrt")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "invalid choice: 'tensorrt'" in done.stderr
    done = cli(home, "baseline", "--runtime", "openvino", "--provider", "cuda")
    assert done.returncode == 2 and done.stderr.strip() == \
        "error: --provider cuda is onnxruntime's: --runtime openvino runs on its own CPU plugin"
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed: importing it raises ImportError
    measure._openvino.cache_clear()
    try:
        with pytest.raises(CompressionError, match="the openvino package is not installed"):
            measure.check_runtime("openvino")
    finally:
        measure._openvino.cache_clear()


def test_the_default_runtime_never_loads_openvino(home):
    code = ("import sys; from compression import pipeline; from compression.recipe import Recipe; "
            "pipeline.run(Recipe(epochs=1)); print('openvino' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, text=True, capture_output=True, timeout=300,
                          env={**os.environ, "COMPRESSION_HOME": str(home)})
    assert done.returncode == 0 and done.stdout.strip() == "False"
