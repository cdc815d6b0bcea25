"""round_to auto: the choice rule's guarantee on a hand-written staircase, the staircase measured in onnxruntime
and cached, a real prune keeping the chosen counts, and the CLI flag."""

import pytest
from torch import nn

from compression import __main__ as cli_main
from compression import staircase
from compression.catalog import ROUND_TO_AUTO
from compression.errors import CompressionError
from compression.export import export_onnx
from compression.measure import onnx_accuracy, prunable_layers
from compression.pipeline import run
from compression.prune import prune_model
from compression.recipe import PruneSpec, Recipe
from compression.result import Result
from compression.staircase import Timing, choose, choose_counts, staircases
from compression.store import Store

RATIOS = [r / 20 for r in range(0, 20)]

# A staircase like the measured one: fast on multiples of 16, slow just above them, full count not the fastest.
COUNTS = [4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48]
MS = [0.9, 1.0, 1.2, 1.0, 2.0, 2.1, 2.2, 1.6, 2.5, 2.6, 2.7, 2.0]


def test_choice_is_never_slower_than_full_and_never_slower_at_a_higher_ratio():
    times = dict(zip(COUNTS, MS))
    chosen = [choose(COUNTS, MS, max(int(48 * (1 - r)), 1)) for r in RATIOS]
    assert all(times[c] <= times[48] for c in chosen)
    assert all(times[b] <= times[a] for a, b in zip(chosen, chosen[1:])), chosen
    assert all(c >= max(int(48 * (1 - r)), 1) for c, r in zip(chosen, RATIOS))  # never removes more than asked
    assert choose(COUNTS, MS, 45) == 48 and choose(COUNTS, MS, 33) == 48  # 36 … 44 are slower than all 48
    assert choose(COUNTS, MS, 17) == 32 and choose(COUNTS, MS, 9) == 16  # ties and steps: the fast multiple of 16
    assert choose([4, 8, 12], [1.0, 1.0, 1.0], 5) == 8  # a tie goes to the fewest channels


def test_candidate_counts_are_multiples_of_four_and_the_full_count():
    assert staircase.candidate_counts(10) == [4, 8, 10]
    assert staircase.candidate_counts(16) == [4, 8, 12, 16]
    assert staircase.candidate_counts(3) == [3]


def tiny_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(12 * 4 * 4, 3))


def test_staircase_is_measured_in_onnxruntime_stored_once_and_served_again():
    store = Store()
    timing = Timing(threads=1, batch=4)
    first = staircases(tiny_model(), (1, 4, 4), timing, store)
    assert list(first) == ["0", "2"]  # the output layer is never measured
    assert first["0"].counts == [4, 8] and first["2"].counts == [4, 8, 12]
    assert all(ms > 0 for stairs in first.values() for ms in stairs.ms)
    assert first["0"].clock == "thread CPU time"
    assert len(store.list(staircase.KIND)) == 2
    again = staircases(tiny_model(), (1, 4, 4), timing, store)
    assert again == first  # the same floats: served from the store, not timed again
    assert len(store.list(staircase.KIND)) == 2
    other = staircases(tiny_model(), (1, 4, 4), Timing(threads=1, batch=8), store)  # another setup: measured
    assert len(store.list(staircase.KIND)) == 4 and other["0"].counts == [4, 8]


def test_channel_prune_with_auto_keeps_the_chosen_counts_and_exports(trained_cnn, digits, tmp_path):
    store = Store()
    choices = choose_counts(trained_cnn, 0.6, digits.input_shape, Timing(), store)
    assert [c.name for c in choices] == ["features.0", "features.3", "classifier.1"]
    for c in choices:
        assert c.asked == int(c.channels * 0.4) and c.asked <= c.kept <= c.channels
        assert c.kept == c.channels or c.kept % 4 == 0
    spec = PruneSpec("channel-l2", 0.6, finetune_epochs=1, round_to="auto")
    prune_model(trained_cnn, spec, digits, seed=0, kept={c.name: c.kept for c in choices})
    layers = dict(prunable_layers(trained_cnn))
    assert {c.name: layers[c.name].weight.shape[0] for c in choices} == {c.name: c.kept for c in choices}
    assert layers["classifier.3"].weight.shape[0] == digits.num_classes
    assert onnx_accuracy(export_onnx(trained_cnn, digits.input_shape, tmp_path / "m.onnx"), digits.test) > 0.8


def test_auto_without_chosen_counts_is_one_line(trained_cnn, digits):
    with pytest.raises(CompressionError, match="round_to auto needs the kept counts"):
        prune_model(trained_cnn, PruneSpec("channel-l2", 0.5, finetune_epochs=0, round_to=ROUND_TO_AUTO), digits, 0)


@pytest.mark.slow
def test_pipeline_records_channels_asked_and_kept():
    recipe = Recipe(epochs=2, prune=PruneSpec("channel-l2", 0.7, finetune_epochs=1, round_to=ROUND_TO_AUTO))
    result = run(recipe)
    chosen = {layer.name: (layer.channels_asked, layer.channels_kept) for layer in result.layers
              if layer.channels_kept is not None}
    assert set(chosen) == {"features.0", "features.3", "classifier.1"}
    assert all(asked <= kept for asked, kept in chosen.values())
    assert all(layer.shape[0] == chosen[layer.name][1] for layer in result.layers if layer.name in chosen)
    assert Result.from_dict(result.to_dict()) == result
    assert recipe.stage_key(0) != Recipe(epochs=2, batch=1, prune=recipe.prune).stage_key(0)


def test_cli_parses_auto_and_refuses_garbage_in_one_line(capsys):
    args = cli_main.build_parser().parse_args(["run", "--prune-method", "channel-l2", "--prune-round-to", "auto"])
    assert cli_main.recipe_from(args, {"prune"}).prune.round_to == ROUND_TO_AUTO
    with pytest.raises(SystemExit) as exit_:
        cli_main.main(["run", "--prune-method", "channel-l2", "--prune-round-to", "sometimes"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exit_.value.code == 2 and len(err) == 1 and "must be auto or a whole number" in err[0]
