"""Training learns, repeats for a seed; every model builds for any shape; ONNX matches torch."""

import numpy as np
import pytest
import torch

from compression.errors import CompressionError
from compression.export import export_onnx
from compression.measure import onnx_logits
from compression.catalog import MODELS, WIDTH_MODELS
from compression.models import _load_weights, build_model
from compression.train import Progress, evaluate, fit, predict, seed_everything


def test_training_beats_chance_and_reports_progress(digits):
    seed_everything(1)
    model = build_model("cnn", digits.input_shape, digits.num_classes)
    before = evaluate(model, digits.val)
    events: list[Progress] = []
    fit(model, digits.train, 3, seed=1, progress=events.append)
    after = evaluate(model, digits.val)
    assert before < 0.3 < 0.85 < after
    assert events[-1].epoch == 3 and events[-1].fraction == pytest.approx(1.0)
    assert events[-1].loss < events[0].loss


def test_training_repeats_for_a_seed(digits):
    weights = []
    for _ in range(2):
        seed_everything(7)
        model = fit(build_model("cnn", digits.input_shape, digits.num_classes), digits.train, 1, seed=7)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_every_model_builds_for_any_input_shape(name, shape):
    model = build_model(name, shape, 7).eval()
    assert model(torch.zeros(2, *shape)).shape == (2, 7)


@pytest.mark.parametrize("name", WIDTH_MODELS)
def test_half_width_has_about_a_quarter_of_the_parameters(name):
    """Parameters grow with the square of the width (conv and hidden layers scale on both sides)."""
    full, half = (build_model(name, (3, 32, 32), 7, width=w).eval() for w in (1.0, 0.5))
    assert half(torch.zeros(2, 3, 32, 32)).shape == (2, 7)
    params_full, params_half = (sum(p.numel() for p in m.parameters()) for m in (full, half))
    assert 0.2 < params_half / params_full < 0.35


def test_a_width_for_a_torchvision_model_is_a_one_line_error():
    with pytest.raises(CompressionError, match="width multiplier applies to cnn, resnet, mobilenet"):
        build_model("mobilenet_v3_small", (3, 32, 32), 7, width=0.5)


def test_unknown_model_and_impossible_pretrained_are_one_line_errors():
    with pytest.raises(CompressionError, match="unknown model 'vgg'"):
        build_model("vgg", (1, 8, 8), 10)
    with pytest.raises(CompressionError, match="no pretrained weights"):
        build_model("cnn", (1, 8, 8), 10, pretrained=True)


def test_pretrained_download_failure_names_where_to_put_the_file(tmp_path, monkeypatch):
    """Offline (here: a closed local port), asking for pretrained weights is a one-line error with the path."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    class Unreachable:
        url = "http://127.0.0.1:9/resnet18-f37072fd.pth"

        def get_state_dict(self, progress):
            return torch.hub.load_state_dict_from_url(self.url, progress=progress)

    with pytest.raises(CompressionError) as info:
        _load_weights(Unreachable(), "resnet18")
    assert str(tmp_path / "checkpoints" / "resnet18-f37072fd.pth") in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["cnn", "resnet", "mobilenet"])
def test_onnx_export_matches_torch_with_a_dynamic_batch(name, digits, tmp_path):
    seed_everything(0)
    model = build_model(name, digits.input_shape, digits.num_classes)
    fit(model, digits.train, 1, seed=0)  # BN running stats become non-trivial
    path = export_onnx(model, digits.input_shape, tmp_path / "m.onnx")
    for batch in (1, 7, 64):
        x = digits.test.x[:batch]
        np.testing.assert_allclose(onnx_logits(path, x), predict(model, x).numpy(), rtol=1e-4, atol=1e-4)
