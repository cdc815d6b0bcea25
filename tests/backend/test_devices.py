"""Where training runs: --device / $COMPRESSION_DEVICE, auto picking CUDA, then MPS, then the CPU; a device the
machine lacks is one line before any work; models always come back on the CPU (export and measurement run
there), and the Result says where it trained. The CUDA test runs where CUDA exists."""

import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest
import torch

from compression import pipeline
from compression.errors import CompressionError
from compression.models import build_model
from compression.recipe import Recipe
from compression.train import evaluate, fit, training_device

ROOT = Path(__file__).resolve().parents[2]
CUDA = torch.cuda.is_available()
CUDA_RUNTIME = "CUDAExecutionProvider" in ort.get_available_providers()


def test_auto_is_the_best_device_present_and_cpu_is_always_there(monkeypatch):
    expected = "cuda" if CUDA else "mps" if torch.backends.mps.is_available() else "cpu"
    assert training_device().type == expected and training_device("auto").type == expected
    assert training_device("cpu").type == "cpu"
    monkeypatch.setenv("COMPRESSION_DEVICE", "CPU")
    assert training_device().type == "cpu"


def test_an_unknown_or_absent_device_is_one_line(monkeypatch):
    with pytest.raises(CompressionError, match="device must be one of auto, cpu, cuda, mps, got 'tpu'"):
        training_device("tpu")
    if not CUDA:
        with pytest.raises(CompressionError, match="device cuda is not available on this machine"):
            training_device("cuda")
        done = subprocess.run([sys.executable, "-m", "compression", "baseline", "--device", "cuda"], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and done.stderr.strip() == \
            "error: device cuda is not available on this machine: use --device auto or cpu"


def test_a_result_says_where_it_trained(monkeypatch):
    monkeypatch.setenv("COMPRESSION_DEVICE", "cpu")
    result = pipeline.run(Recipe(epochs=1))
    assert result.provenance.training_device == "cpu"


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device: the GPU path runs where one exists")
def test_training_on_cuda_learns_and_hands_the_model_back_on_the_cpu(digits, monkeypatch):
    monkeypatch.setenv("COMPRESSION_DEVICE", "cuda")
    torch.manual_seed(0)
    model = fit(build_model("cnn", digits.input_shape, digits.num_classes), digits.train, 5, seed=0)
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert evaluate(model, digits.test) > 0.8
    assert pipeline.run(Recipe(epochs=2)).provenance.training_device.startswith("cuda")


def test_latency_is_timed_on_the_provider_asked_for_and_an_absent_one_is_one_line():
    cpu = pipeline.run(Recipe(epochs=1))
    assert cpu.provenance.runtime.endswith(" CPUExecutionProvider") and "provider" not in cpu.recipe
    assert Recipe(epochs=1, provider="cuda").hash != cpu.recipe_hash  # a timing setup of its own
    with pytest.raises(CompressionError, match="unknown execution provider 'tpu'"):
        Recipe(provider="tpu").validate()
    if CUDA_RUNTIME:
        on_gpu = pipeline.run(Recipe(epochs=1, provider="cuda"))
        assert on_gpu.provenance.runtime.endswith(" CUDAExecutionProvider") and on_gpu.latency_measured
        assert on_gpu.accuracy == cpu.accuracy  # scored on the CPU provider either way
        return
    done = subprocess.run([sys.executable, "-m", "compression", "baseline", "--epochs", "1", "--provider", "cuda"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr
    assert done.stderr.startswith("error: --provider cuda: this onnxruntime has no CUDAExecutionProvider (it has cpu")
