"""The registries: every entry's implementation loads, the CLI offers exactly what is registered, and a method
registered at run time (a new importance, defined here) validates, prunes, describes and shows in the CLI
without a change anywhere else. The public API loads lazily: the store path never imports torch."""

import subprocess
import sys

import pytest
import torch
import torch_pruning as tp

from compression import describe
from compression.__main__ import build_parser
from compression.catalog import MODELS, PRUNE_METHODS, QUANT_MODES, PruneMethod
from compression.errors import CompressionError
from compression.measure import prunable_layers
from compression.prune import prune_model, pruning_cuts
from compression.recipe import PruneSpec, Recipe


class KeepFirst(tp.importance.Importance):
    """A criterion no built-in has: the lower a channel's index, the more important it is."""

    def __call__(self, group) -> torch.Tensor:
        return -torch.arange(len(group[0].idxs), dtype=torch.float32)


def keep_first(spec: PruneSpec) -> tp.importance.Importance:
    return KeepFirst()


@pytest.mark.parametrize("registry", [PRUNE_METHODS, QUANT_MODES, MODELS], ids=lambda r: r.kind)
def test_every_entry_names_an_implementation_that_loads(registry):
    for entry in registry.entries:
        assert entry.help and entry.label.startswith(f"{entry.name} — ")
        if entry.implementation:  # the simulated quantization mode needs no converter
            assert callable(entry.load())
    assert [entry.name for entry in registry.entries] == list(registry)


def choices(parser, command: str, flag: str) -> list[str]:
    sub = next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith(command))
    return list(next(a for a in sub._actions if flag in a.option_strings).choices)


def test_the_cli_offers_what_is_registered_and_an_unknown_name_is_one_line():
    parser = build_parser()
    assert choices(parser, "run", "--prune-method") == list(PRUNE_METHODS)
    assert choices(parser, "run", "--quant") == list(QUANT_MODES)
    assert choices(parser, "run", "--distill-student") == list(MODELS)
    with pytest.raises(CompressionError, match=r"^unknown prune method 'lasso': choose one of l1-unstructured, "):
        PruneSpec("lasso", 0.5).validate()
    with pytest.raises(CompressionError, match=r"^unknown model 'vgg'"):
        Recipe(model="vgg").validate()


def test_capabilities_answer_for_the_entries():
    assert PRUNE_METHODS.where(structured=True) == ("channel-l1", "channel-l2", "activation")
    assert QUANT_MODES.where(integer=True) == ("int8-static", "int8-dynamic")
    assert QUANT_MODES.where(simulated=True) == ("fake",)
    assert MODELS.where(scalable=True) == ("cnn", "resnet", "mobilenet")
    with pytest.raises(ValueError, match="no capability 'fast'"):
        PRUNE_METHODS.where(fast=True)


def test_a_method_registered_at_run_time_is_offered_checked_and_dispatched(trained_cnn, digits, monkeypatch):
    monkeypatch.setattr(PRUNE_METHODS, "_entries", dict(PRUNE_METHODS._entries))  # undone after the test
    PRUNE_METHODS.register(PruneMethod("channel-first", "keeps the lowest-numbered channels",
                                       f"{__name__}:keep_first", structured=True, norm=1))
    spec = PruneSpec("channel-first", 0.5, finetune_epochs=0)
    spec.validate()
    assert spec.structured and "channel-first" in choices(build_parser(), "run", "--prune-method")
    assert describe.stage(Recipe(prune=spec), "prune") == "prune channel-first 50% (0 ft epochs)"
    first = trained_cnn.features[0].weight.detach().clone()
    pruned = prune_model(trained_cnn, spec, digits, seed=0)
    kept = prunable_layers(pruned)[0][1].weight
    assert kept.shape[0] == 16 and torch.equal(kept, first[:16])  # its own criterion chose the channels
    assert pruning_cuts(pruned, "channel-first", 0.5)[0].unit == "channel L1 norm"
    with pytest.raises(ValueError, match="registered already"):
        PRUNE_METHODS.register(PRUNE_METHODS["channel-l2"])


def test_the_public_api_is_one_import_and_the_store_path_stays_torch_free():
    code = ("import sys\n"
            "from compression import Recipe, PruneSpec, QuantSpec, DistillSpec, Result, Store, CompressionError\n"
            "assert 'torch' not in sys.modules, 'the specs and the store must not load torch'\n"
            "from compression import run\n"
            "assert 'torch' in sys.modules and run.__module__ == 'compression.pipeline'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        import compression
        compression.nothing  # noqa: B018
