"""Pruning: unstructured magnitude (per layer or global), structured channel pruning by weight norm or by
weight-and-activation importance (torch-pruning's dependency graph shrinks the following layers too),
an iterative prune / fine-tune schedule, and per-layer sensitivity analysis."""

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch_pruning as tp
from torch import nn
from torch.nn.utils import prune as torch_prune

from compression.catalog import PRUNE_METHODS, ROUND_TO_AUTO
from compression.data import Splits
from compression.distill import teacher_loss
from compression.errors import CompressionError
from compression.measure import prunable_layers
from compression.recipe import PruneSpec
from compression.result import Histogram, LayerSensitivity, PruneRound, Result
from compression.train import Plateau, Progress, ProgressFn, evaluate, fit, silent

CALIBRATION_SAMPLES = 256
SENSITIVITY_RATIOS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def output_layer(model: nn.Module) -> nn.Module:
    """The classifier layer: the last conv / linear layer, whose outputs are the classes and never pruned."""
    return prunable_layers(model)[-1][1]


def step_targets(ratio: float, steps: int) -> list[float]:
    """Cumulative fraction removed after each of `steps` rounds, rising linearly to `ratio`."""
    return [ratio * k / steps for k in range(1, steps + 1)]


def kept_channels(channels: int, ratio: float, round_to: int = 1) -> int:
    """Channels a layer keeps when `ratio` of them are removed, rounded down to a multiple of `round_to`
    (torch-pruning's arithmetic; round_to auto asks this count unrounded, see compression.staircase)."""
    kept = int(channels * (1 - ratio))
    return kept - kept % round_to if round_to > 1 else kept


def check_structured_ratio(model: nn.Module, ratio: float, round_to: int = 1) -> None:
    """Raise a one-line CompressionError if channel pruning at `ratio` would leave a layer with no channels."""
    head = output_layer(model)
    for name, layer in prunable_layers(model):
        channels = layer.weight.shape[0]
        if layer is not head and kept_channels(channels, ratio, round_to) < 1:
            rounding = f" rounded to a multiple of {round_to}" if round_to > 1 else ""
            raise CompressionError(
                f"structured ratio {ratio}{rounding} would empty layer '{name}' ({channels} channels → 0): "
                f"use a smaller ratio")


class WeightActivationImportance(tp.importance.Importance):
    """λ · (weight L2 magnitude) + (1 − λ) · (mean |activation| the channel passes to the next layers),
    each normalised by its mean over the group, so that λ balances two scale-free terms. The activation
    is what the following conv / linear layers receive (after the non-linearity), on calibration inputs."""

    def __init__(self, lam: float) -> None:
        self.lam = lam
        self.magnitude = tp.importance.MagnitudeImportance(p=2)
        self.activations: dict[nn.Module, torch.Tensor] = {}

    def calibrate(self, model: nn.Module, x: torch.Tensor) -> None:
        """Record each layer's mean |input| per input channel on calibration inputs `x` (train split)."""
        def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], _: torch.Tensor) -> None:
            a = inputs[0].detach().abs()
            self.activations[module] = a.mean(dim=(0, 2, 3)) if a.dim() == 4 else a.flatten(0, -2).mean(dim=0)

        self.activations = {}
        handles = [m.register_forward_hook(record) for _, m in prunable_layers(model)]
        try:
            model.eval()
            with torch.no_grad():
                model(x)
        finally:
            for handle in handles:
                handle.remove()

    def activation(self, group: tp.dependency.Group) -> torch.Tensor | None:
        """Mean activation of each root channel of `group`, averaged over every layer input it feeds."""
        total, count = torch.zeros(len(group[0].idxs)), torch.zeros(len(group[0].idxs))
        for item in group:
            layer, handler = item.dep.target.module, item.dep.handler
            if handler in (tp.prune_conv_in_channels, tp.prune_linear_in_channels) and layer in self.activations:
                roots = torch.tensor(item.root_idxs)
                total.scatter_add_(0, roots, self.activations[layer][item.idxs])
                count.scatter_add_(0, roots, torch.ones(len(roots)))
        if not count.any():
            return None
        mean = total / count.clamp(min=1)
        return mean / mean.mean().clamp(min=1e-12)

    def __call__(self, group: tp.dependency.Group) -> torch.Tensor | None:
        weight, activation = self.magnitude(group), self.activation(group)
        if weight is None or activation is None:
            return weight if activation is None else activation
        return self.lam * weight + (1 - self.lam) * activation


def magnitude_importance(spec: PruneSpec) -> tp.importance.Importance:
    """Channels ranked by the L1 / L2 norm (the method's `norm`) of their weights."""
    return tp.importance.MagnitudeImportance(p=spec.technique.norm)


def activation_importance(spec: PruneSpec) -> tp.importance.Importance:
    """Channels ranked by λ · weight magnitude + (1 − λ) · mean activation."""
    return WeightActivationImportance(spec.lam)


def _importance(spec: PruneSpec) -> tp.importance.Importance:
    """The importance a structured method's registry entry builds for `spec`."""
    return spec.technique.load()(spec)


def _calibration_inputs(splits: Splits, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(splits.train.y), generator=generator)[:CALIBRATION_SAMPLES]
    return splits.train.x[idx]


def _structured_pruner(model: nn.Module, spec: PruneSpec, example: torch.Tensor,
                       ratio_dict: dict[nn.Module, float] | None = None, others: float = 0.0) -> tp.pruner.MetaPruner:
    """torch-pruning's pruner for `spec`: every layer at spec.ratio, or the layers of `ratio_dict` at theirs and
    the others at `others`; the output layer is never pruned."""
    return tp.pruner.MetaPruner(
        model, example, importance=_importance(spec), pruning_ratio=others if ratio_dict else spec.ratio,
        pruning_ratio_dict=ratio_dict, iterative_steps=spec.steps, ignored_layers=[output_layer(model)],
        round_to=spec.round_to if spec.round_to > 1 else None)


def exact_ratio(channels: int, kept: int) -> float:
    """The ratio at which torch-pruning keeps exactly `kept` of `channels` (it keeps int(channels · (1 − r)))."""
    return 0.0 if kept >= channels else 1 - (kept + 0.5) / channels


def _auto_pruner(model: nn.Module, spec: PruneSpec, example: torch.Tensor,
                 kept: dict[str, int] | None) -> tp.pruner.MetaPruner:
    """The pruner of round_to auto: each layer of `kept` (name -> count chosen on its staircase) at the ratio
    that keeps that count, every other prunable layer at the spec's ratio."""
    if kept is None:
        raise CompressionError("round_to auto needs the kept counts chosen on the latency staircase "
                               "(compression.staircase.choose_counts)")
    layers = dict(prunable_layers(model))
    ratios = {layers[name]: exact_ratio(layers[name].weight.shape[0], count) for name, count in kept.items()}
    return _structured_pruner(model, spec, example, ratios, others=spec.ratio)


def check_kept(model: nn.Module, kept: dict[str, int]) -> None:
    """Raise a one-line CompressionError unless each named layer of `model` has the output channels asked."""
    layers = dict(prunable_layers(model))
    for name, count in kept.items():
        if layers[name].weight.shape[0] != count:
            raise CompressionError(f"round_to auto chose {count} channels for layer '{name}' but torch-pruning kept "
                                   f"{layers[name].weight.shape[0]} (layers coupled in this model): use a fixed "
                                   f"round-to")


def mask_each_layer(layers: Sequence[nn.Module], amount: float) -> None:
    """Mask `amount` of the still-unmasked weights of each layer, by magnitude within the layer."""
    for layer in layers:
        torch_prune.l1_unstructured(layer, "weight", amount=amount)


def mask_globally(layers: Sequence[nn.Module], amount: float) -> None:
    """Mask `amount` of the still-unmasked weights of all `layers`, by magnitude under one threshold."""
    torch_prune.global_unstructured([(layer, "weight") for layer in layers],
                                    pruning_method=torch_prune.L1Unstructured, amount=amount)


def _prune_unstructured(model: nn.Module, method: str, amount: float) -> None:
    """Mask `amount` of the still-unmasked conv / linear weights of `model` as the method's entry does."""
    PRUNE_METHODS[method].load()([m for _, m in prunable_layers(model)], amount)


def _make_masks_permanent(model: nn.Module) -> None:
    """Fold pruning masks into the weights (torch.nn.utils.prune only masks) so export sees real zeros."""
    for _, module in prunable_layers(model):
        if torch_prune.is_pruned(module):
            torch_prune.remove(module, "weight")


def prune_model(model: nn.Module, spec: PruneSpec, splits: Splits, seed: int, progress: ProgressFn = silent,
                teacher: nn.Module | None = None, kept: dict[str, int] | None = None,
                rounds: list[PruneRound] | None = None) -> nn.Module:
    """Prune `model` in place to `spec.ratio` over `spec.steps` rounds, fine-tuning on the train split after
    each round (with spec.patience, each round until the validation split's plateau; with spec.kd, on the KD
    loss against the logits of `teacher`, or of `model` itself, taken before any pruning);
    returns the model ready for export (masks folded, channels physically removed). With round_to auto,
    `kept` names each measured layer's final channel count (compression.staircase.choose_counts). Given a
    list `rounds`, each round's validation accuracy before the cut, right after it and after fine-tuning is
    appended to it."""
    spec.validate()
    loss_fn = teacher_loss(model if teacher is None else teacher, splits.train) if spec.kd else None
    structured = spec.structured
    if structured:
        check_structured_ratio(model, spec.ratio, spec.round_to)
        calibration = _calibration_inputs(splits, seed)
        auto = spec.round_to == ROUND_TO_AUTO
        pruner = _auto_pruner(model, spec, calibration[:1], kept) if auto else _structured_pruner(
            model, spec, calibration[:1])
    previous = 0.0
    for step, target in enumerate(step_targets(spec.ratio, spec.steps), 1):
        progress(Progress("prune", f"{spec.method}: round {step}/{spec.steps}, {target:.0%} removed"))
        before = evaluate(model, splits.val) if rounds is not None else 0.0
        if structured:
            if isinstance(pruner.importance, WeightActivationImportance):
                pruner.importance.calibrate(model, calibration)
            pruner.step()
        else:
            _prune_unstructured(model, spec.method, 1 - (1 - target) / (1 - previous))
        previous = target
        cut = evaluate(model, splits.val) if rounds is not None else 0.0
        fit(model, splits.train, spec.finetune_epochs, seed=seed + step, stage="fine-tune", progress=progress,
            loss_fn=loss_fn, plateau=Plateau(splits.val, spec.patience))
        if rounds is not None:
            rounds.append(PruneRound(target, before, cut, evaluate(model, splits.val)))
    if structured and auto:
        check_kept(model, kept)
    _make_masks_permanent(model)
    return model


def _prune_one_layer(model: nn.Module, name: str, method: str, ratio: float, example: torch.Tensor) -> nn.Module:
    """A copy of `model` with only layer `name` pruned by `method` at `ratio` (no fine-tuning)."""
    pruned = copy.deepcopy(model)
    layer = pruned.get_submodule(name)
    spec = PruneSpec(method=method, ratio=ratio)
    if spec.structured:
        pruner = _structured_pruner(pruned, spec, example, ratio_dict={layer: ratio})
        if isinstance(pruner.importance, WeightActivationImportance):
            pruner.importance.calibrate(pruned, example)
        pruner.step()
    else:
        torch_prune.l1_unstructured(layer, "weight", amount=ratio)
        _make_masks_permanent(pruned)
    return pruned


def sensitivity(model: nn.Module, splits: Splits, method: str, seed: int,
                ratios: Sequence[float] = SENSITIVITY_RATIOS, progress: ProgressFn = silent) -> list[LayerSensitivity]:
    """For each prunable layer alone, validation accuracy after pruning it at each ratio without fine-tuning.
    Structured methods skip the classifier layer, whose outputs are the classes."""
    spec = PruneSpec(method=method, ratio=max(ratios))
    spec.validate()
    structured = spec.structured
    if structured:
        check_structured_ratio(model, spec.ratio)
    example = _calibration_inputs(splits, seed)
    head = output_layer(model)
    layers = [(n, m) for n, m in prunable_layers(model) if not (structured and m is head)]
    table = []
    for i, (name, layer) in enumerate(layers, 1):
        progress(Progress("sensitivity", f"layer {i}/{len(layers)}: {name}"))
        accuracy = [evaluate(_prune_one_layer(model, name, method, r, example), splits.val) for r in ratios]
        table.append(LayerSensitivity(name, layer.weight.shape[0], layer.weight.numel(), accuracy))
    return table


@dataclass(frozen=True)
class LayerCut:
    """One layer's importance scores (|weight| per weight, or a per-channel norm) binned, and the cut that a
    prune ratio implies: scores at or below `threshold` go (`removed` of them)."""

    name: str
    unit: str
    histogram: Histogram
    threshold: float
    removed: int
    total: int

    @property
    def what(self) -> str:
        """What is cut: 'weights' or 'channels'."""
        return "weights" if self.unit == "|weight|" else "channels"


def _kth(values: torch.Tensor, k: int) -> float:
    """The k-th smallest value (the largest one pruned), or just below the smallest if nothing goes."""
    if k <= 0:
        return float(values.min()) - 1e-12
    return float(torch.kthvalue(values.flatten(), min(k, values.numel())).values)


def pruning_cuts(model: nn.Module, method: str, ratio: float, round_to: int = 1, bins: int = 60) -> list[LayerCut]:
    """Per layer of the (unpruned, read-only) `model`: the histogram of what `method` ranks and the one-shot
    threshold `ratio` implies. Unstructured: |w| with the layer's own cut or one cut across layers (the
    method's `scope`), the count torch.nn.utils.prune removes (round(ratio · n)). Channel methods: each output
    channel's weight norm (the method's `norm`), cut at the channels torch-pruning removes (classifier kept);
    the real pruner scores whole dependency groups, and activation importance also weighs activations, so the
    exact channels can differ."""
    technique = PRUNE_METHODS[method]
    layers = prunable_layers(model)
    cuts = []
    with torch.no_grad():
        if technique.structured:
            p = technique.norm
            for i, (name, layer) in enumerate(layers):
                scores = layer.weight.detach().flatten(1).norm(p=p, dim=1)
                n = scores.numel()
                removed = 0 if i == len(layers) - 1 else n - max(kept_channels(n, ratio, round_to), 0)
                cuts.append(_cut(name, f"channel L{p} norm", scores, removed, bins))
        else:
            magnitudes = [(name, layer.weight.detach().abs().flatten()) for name, layer in layers]
            if technique.scope == "global":
                every = torch.cat([m for _, m in magnitudes])
                threshold = _kth(every, round(ratio * every.numel()))
                for name, m in magnitudes:
                    cuts.append(_cut(name, "|weight|", m, int((m <= threshold).sum()), bins, threshold))
            else:
                for name, m in magnitudes:
                    cuts.append(_cut(name, "|weight|", m, round(ratio * m.numel()), bins))
    return cuts


FILTERS_A_ROW = 16  # a layer's filters drawn in rows of this many


@dataclass(frozen=True)
class FilterMap:
    """A layer drawn unit by unit for the one-shot cut: each output filter (channel methods, rows of
    FILTERS_A_ROW) or each weight (unstructured: one row an output) as a cell holding its importance score,
    and whether the cut removes it."""

    name: str
    unit: str  # "filter" or "weight"
    scores: list[list[float | None]]  # None: a cell past the layer's last filter
    removed: list[list[bool]]

    @property
    def removed_count(self) -> int:
        return sum(map(sum, self.removed))


def filter_map(model: nn.Module, method: str, ratio: float, layer: str, round_to: int = 1) -> FilterMap:
    """Which units of `model`'s `layer` the one-shot cut of pruning_cuts removes at `ratio`: the same scores
    (a channel's weight norm, or |weight|) and the same count, the lowest-scored going."""
    cut = next(c for c in pruning_cuts(model, method, ratio, round_to) if c.name == layer)
    weight = model.get_submodule(layer).weight.detach()
    technique = PRUNE_METHODS[method]
    if technique.structured:
        scores = weight.flatten(1).norm(p=technique.norm, dim=1)
    else:
        scores = weight.abs().flatten(1)
    gone = torch.zeros(scores.numel(), dtype=torch.bool)
    gone[torch.argsort(scores.flatten(), stable=True)[:cut.removed]] = True
    if technique.structured:
        cells = -(-scores.numel() // FILTERS_A_ROW) * FILTERS_A_ROW
        padded = [*scores.tolist(), *[None] * (cells - scores.numel())]
        flags = [*gone.tolist(), *[False] * (cells - scores.numel())]
        rows = range(0, cells, FILTERS_A_ROW)
        return FilterMap(layer, "filter", [padded[i:i + FILTERS_A_ROW] for i in rows],
                         [flags[i:i + FILTERS_A_ROW] for i in rows])
    return FilterMap(layer, "weight", scores.tolist(), gone.reshape(scores.shape).tolist())


def histogram(values: torch.Tensor, bins: int) -> Histogram:
    """`values` binned into `bins` equal bins between their minimum and maximum."""
    counts, edges = np.histogram(values.detach().double().flatten().numpy(), bins=bins)
    return Histogram(counts.tolist(), edges.tolist())


def _cut(name: str, unit: str, scores: torch.Tensor, removed: int, bins: int,
         threshold: float | None = None) -> LayerCut:
    return LayerCut(name, unit, histogram(scores, bins), _kth(scores, removed) if threshold is None else threshold,
                    removed, scores.numel())


@dataclass(frozen=True)
class LayerRemoval:
    """How much of one baseline layer's weights a pruned result lost: removed with whole channels (the tensors
    shrank) or zeroed in place (still in the tensors), as fractions of the baseline's weights."""

    name: str
    removed: float
    zeroed: float


def layer_removal(base: Result, result: Result) -> list[LayerRemoval]:
    """Per conv / linear layer of `result`'s exported model, the share of `base`'s weights removed and zeroed:
    a removed channel takes its weights out of its own layer and its input columns out of the next."""
    before = {layer.name: layer.weights for layer in base.layers}
    shares = []
    for layer in result.layers:
        total = before.get(layer.name, layer.weights)
        shares.append(LayerRemoval(layer.name, 1 - layer.weights / total, (layer.weights - layer.nonzero) / total))
    return shares
