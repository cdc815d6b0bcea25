"""Training that stops on a validation plateau (train.Plateau): on a real tiny training it stops before its cap
and keeps the best epoch; patience 0 is the fixed-length training it always was; the specs' patience fields
keep the hashes of recipes that do not use them."""

import copy
from dataclasses import replace

import pytest
import torch
from torch.nn import functional as F

from compression.data import Split
from compression.errors import CompressionError
from compression.models import build_model
from compression.recipe import DistillSpec, PruneSpec, QuantSpec, Recipe
from compression.train import Plateau, Progress, Stopped, fit, seed_everything


def _student(digits):
    seed_everything(0)
    return build_model("cnn", digits.input_shape, digits.num_classes, width=0.25)


def _few(split: Split, n: int) -> Split:
    return Split(split.x[:n], split.y[:n])


def _val_loss(model, val: Split) -> float:
    with torch.no_grad():
        return F.cross_entropy(model.eval()(val.x), val.y).item()


def test_plateau_stops_before_the_cap_and_restores_the_best_epoch(digits):
    # 64 train images: the student overfits within a few dozen epochs, so validation stops improving
    events: list[Progress] = []
    model = fit(_student(digits), _few(digits.train, 64), 400, seed=0, lr=1e-2, progress=events.append,
                plateau=Plateau(digits.val, patience=5))
    stopped = events[-1].stopped
    assert isinstance(stopped, Stopped) and stopped.cap == 400
    assert stopped.epochs_run < 400 and stopped.epochs_run == stopped.best_epoch + 5
    assert stopped.last_val_loss > stopped.val_loss  # training went on past the best epoch ...
    assert _val_loss(model, digits.val) == pytest.approx(stopped.val_loss, rel=1e-5)  # ... whose weights came back
    accuracy = (model(digits.val.x).argmax(1) == digits.val.y).float().mean().item()
    assert accuracy == pytest.approx(stopped.val_accuracy)
    assert stopped.text() == f"stopped at epoch {stopped.epochs_run} of at most 400 (best {stopped.best_epoch})"
    again = fit(_student(digits), _few(digits.train, 64), 400, seed=0, lr=1e-2, plateau=Plateau(digits.val, 5))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_patience_zero_is_the_fixed_length_training(digits):
    fixed = fit(_student(digits), digits.train, 2, seed=3)
    zero = fit(_student(digits), digits.train, 2, seed=3, plateau=Plateau(digits.val, 0))
    assert all(torch.equal(a, b) for a, b in zip(fixed.state_dict().values(), zero.state_dict().values()))


def test_a_training_that_never_improves_keeps_the_weights_it_started_from(digits, trained_cnn):
    start = copy.deepcopy(trained_cnn.state_dict())
    events: list[Progress] = []
    fit(trained_cnn, _few(digits.train, 32), 3, seed=0, lr=0.5, progress=events.append,
        plateau=Plateau(digits.val, patience=3))  # a rate this high only makes it worse
    assert events[-1].stopped.best_epoch == 0
    assert all(torch.equal(start[k], v) for k, v in trained_cnn.state_dict().items())


# Hashes as main computed them before patience existed: recipes at patience 0 keep their store keys.
OLD_PRUNE = PruneSpec("channel-l2", 0.5, finetune_epochs=10, kd=False, patience=0)
OLD_DISTILL = DistillSpec(epochs=80, patience=0)


def test_patience_zero_keeps_the_old_hashes_and_the_new_defaults_get_new_ones():
    assert Recipe(prune=OLD_PRUNE).hash == "a3df007bcfedf029"
    assert Recipe(distill=OLD_DISTILL).hash == "fc61d2f456dd5698"
    assert Recipe(quant=QuantSpec("int8-static", qat_epochs=5, qat_patience=0)).hash == "b02c813afc493cf0"
    chain = Recipe(distill=OLD_DISTILL, prune=OLD_PRUNE, quant=QuantSpec("int8-static", qat_epochs=3, qat_patience=0))
    assert chain.hash == "5e30000b435bd537"
    assert [chain.stage_key(i) for i in range(3)] == ["1a5b9fb70e2749c0", "b0f7a302faa613c9", "75536377f7fc6c26"]
    # the defaults stop on a plateau: other results, other keys
    assert Recipe(prune=PruneSpec("channel-l2", 0.5)).hash != "a3df007bcfedf029"
    assert Recipe(distill=DistillSpec()).hash != "fc61d2f456dd5698"
    assert Recipe(quant=QuantSpec("int8-static", qat_epochs=5)).hash != "b02c813afc493cf0"
    # without QAT there is nothing to stop: post-training quantization keeps its key whatever the patience
    assert QuantSpec("int8-static", qat_patience=7) == QuantSpec("int8-static")
    assert "qat_patience" not in QuantSpec("int8-static").to_dict()


def test_stored_specs_without_patience_read_back_as_fixed_length():
    stored = Recipe(distill=OLD_DISTILL, prune=OLD_PRUNE, quant=QuantSpec("int8-static", qat_epochs=3, qat_patience=0))
    data = stored.to_dict()
    assert "patience" not in data["prune"] and "patience" not in data["distill"]
    assert "qat_patience" not in data["quant"]
    assert Recipe.from_dict(data) == stored and Recipe.from_dict(data).hash == stored.hash
    default = Recipe(distill=DistillSpec(), prune=PruneSpec("channel-l2", 0.5))
    assert Recipe.from_dict(default.to_dict()) == default


@pytest.mark.parametrize("spec, message", [
    (Recipe(prune=PruneSpec("channel-l2", 0.5, patience=-1)), "fine-tune patience must be within"),
    (Recipe(distill=DistillSpec(patience=201)), "distill patience must be within"),
    (Recipe(quant=QuantSpec("int8-static", qat_epochs=5, qat_patience=-3)), "QAT patience must be within"),
])
def test_patience_out_of_range_is_one_line(spec, message):
    with pytest.raises(CompressionError, match=message) as err:
        spec.validate()
    assert "\n" not in str(err.value)


def test_distillation_with_patience_needs_a_validation_split(digits, trained_cnn):
    from compression.distill import train_student
    with pytest.raises(ValueError, match="validation split"):
        train_student(_student(digits), trained_cnn, digits.train, replace(DistillSpec(), epochs=1), seed=0)


def test_the_pipeline_records_where_each_training_stopped(home):
    from compression import pipeline
    from compression.result import Result
    from compression.store import Store
    recipe = Recipe(epochs=2, distill=DistillSpec(epochs=3, patience=1),
                    prune=PruneSpec("l1-unstructured", 0.5, steps=2, finetune_epochs=3, patience=1),
                    quant=QuantSpec("fake", bits=4, qat_epochs=2, qat_patience=1))
    result = pipeline.run(recipe, Store())
    baseline, distilled, pruned, quantized = result.stages
    assert baseline.epochs_run is None and baseline.stopped_text is None
    assert distilled.epochs_cap == 3 and 1 <= distilled.epochs_run <= 3  # the KD student's, not its control's
    assert pruned.epochs_cap == 6 and 2 <= pruned.epochs_run <= 6  # two rounds of at most 3
    assert quantized.epochs_cap == 2 and 0 <= quantized.best_epoch <= quantized.epochs_run <= 2
    assert Result.from_dict(result.to_dict()).stages == result.stages
    # a recipe that begins alike takes the stored stages, records and all
    other = pipeline.run(replace(recipe, quant=QuantSpec("fake", bits=8)), Store())
    assert other.stages[1:3] == result.stages[1:3] and other.stages[3].epochs_run is None  # no QAT: no stop
