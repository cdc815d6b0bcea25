"""Shared fixtures: an isolated data folder per test, and one digits CNN trained for real per session."""

import copy

import pytest
import torch

from compression.data import Splits, load_dataset
from compression.models import build_model
from compression.train import fit, seed_everything


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """Every test gets its own COMPRESSION_HOME, so no test sees another's store."""
    monkeypatch.setenv("COMPRESSION_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="session")
def digits() -> Splits:
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def _trained_cnn(digits) -> torch.nn.Module:
    seed_everything(0)
    model = build_model("cnn", digits.input_shape, digits.num_classes)
    return fit(model, digits.train, 12, seed=0)


@pytest.fixture
def trained_cnn(_trained_cnn) -> torch.nn.Module:
    """A CNN trained on digits for real (once per session); each test gets its own copy to mutate."""
    return copy.deepcopy(_trained_cnn)
