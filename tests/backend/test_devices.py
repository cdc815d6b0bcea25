"""Where training runs: --device / $COMPRESSION_DEVICE, auto picking CUDA, then MPS, then the CPU; a device the
machine lacks is one line before any work; models always come back on the CPU (export and measurement run
there), and the Result says where it trained. The CUDA test runs where CUDA exists."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from compression import pipeline
from compression.errors import CompressionError
from compression.models import build_model
from compression.recipe import Recipe
from compression.train import evaluate, fit, training_device

ROOT = Path(__file__).resolve().parents[2]
CUDA = torch.cuda.is_available()


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
