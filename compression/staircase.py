"""Runtime-aware channel counts (`round_to` auto): the measured latency staircase of each prunable layer on this
CPU — the layer and the layer it feeds, at their real input geometry, timed in onnxruntime for candidate kept
counts — cached in the store once per machine and timing setup, and the rule that picks each layer's kept
count on it."""

import hashlib
import json
import platform
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import onnxruntime as ort
import torch
from torch import nn

from compression.measure import TimingPlan, cpu_flags, prunable_layers, time_interleaved
from compression.store import Store
from compression.prune import kept_channels
from compression.train import Progress, ProgressFn, silent

KIND = "staircase"  # the store's kind for measured staircases
STEP = 4  # candidate counts are the multiples of 4 (onnxruntime's fast paths want them) and the full count
PLAN = TimingPlan(warmup=5, min_runs=30, min_seconds=0.1)  # every candidate of a layer timed interleaved


@dataclass(frozen=True)
class Timing:
    """The timing setup a staircase is measured for (a recipe's threads, batch and provider)."""

    threads: int = 1
    batch: int = 32
    provider: str = "cpu"


@dataclass(frozen=True)
class Staircase:
    """One layer's measured latency (ms: thread CPU time with one thread, else wall time p50) of itself and the
    layer it feeds, for each candidate count of its kept output channels."""

    counts: list[int]
    ms: list[float]
    clock: str

    def choose(self, asked: int) -> int:
        """The kept count for `asked` channels: see `choose`."""
        return choose(self.counts, self.ms, asked)


@dataclass(frozen=True)
class LayerChoice:
    """One layer's kept channels as a ratio asks them (round_to 1) and as chosen on its staircase."""

    name: str
    channels: int
    asked: int
    kept: int


def choose(counts: Sequence[int], ms: Sequence[float], asked: int) -> int:
    """Among the candidate counts >= `asked`, the one with the lowest measured time (ties: fewest channels).

    Why this keeps the guarantee: the candidates are a fixed set per layer that always holds the full count, so
    (a) no choice is measured slower than the unpruned layer, and (b) a higher ratio asks fewer channels, so its
    admissible set (counts >= asked) only grows and its minimum time can only fall: a higher ratio is never
    slower on the staircase. A count is never below what the ratio asks, so the ratio is an upper bound on what
    is removed. Each layer's staircase is measured with its neighbours at full width, so the guarantee holds
    per layer on the measurement; the whole model's latency is checked by bench/round_to.py."""
    candidates = [(t, c) for c, t in zip(counts, ms) if c >= asked]
    if not candidates:
        raise ValueError(f"no candidate count >= {asked} in {list(counts)}")
    return min(candidates)[1]


def candidate_counts(channels: int) -> list[int]:
    """The kept counts a layer of `channels` output channels is timed at: multiples of STEP and the full count."""
    return sorted({*range(STEP, channels, STEP), channels})


@dataclass(frozen=True)
class _Pair:
    """A prunable layer and the layer it feeds (None: timed alone), with their input shapes for one image."""

    layer: nn.Module
    shape: tuple[int, ...]
    following: nn.Module | None
    following_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...]


def _feeds(layer: nn.Module, following: nn.Module) -> bool:
    """Whether `following` takes `layer`'s output channels as its inputs, densely (what the pair model builds)."""
    out = layer.weight.shape[0]
    if isinstance(following, nn.Conv2d):
        return isinstance(layer, nn.Conv2d) and following.groups == 1 and following.in_channels == out
    return following.in_features % out == 0 and (isinstance(layer, nn.Conv2d) or following.in_features == out)


def _pairs(model: nn.Module, input_shape: Sequence[int]) -> dict[str, _Pair]:
    """Every prunable layer but the output layer, with the next prunable layer if it takes its channels."""
    layers = prunable_layers(model)
    shapes: dict[nn.Module, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.__setitem__(m, (tuple(i[0].shape[1:]),
                                                                             tuple(o.shape[1:]))))
             for _, m in layers]
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    pairs = {}
    for (name, layer), (_, following) in zip(layers, layers[1:]):
        if layer not in shapes or (isinstance(layer, nn.Conv2d) and layer.groups > 1):
            continue
        fed = following in shapes and _feeds(layer, following)
        pairs[name] = _Pair(layer, shapes[layer][0], following if fed else None,
                            shapes[following][0] if fed else None, shapes[layer][1])
    return pairs


def _grid(positions: int, height: int, width: int) -> tuple[int, int]:
    """A (h, w) with h·w = `positions`, as close to the aspect of height × width as divides evenly."""
    h = max(1, round((positions * height / max(width, 1)) ** 0.5))
    while positions % h:
        h -= 1
    return h, positions // h


def _pair_model(pair: _Pair, kept: int) -> nn.Module:
    """The layer with `kept` output channels, its activation, and the layer it feeds taking those channels,
    each at its real geometry (a pooling in between restores the following layer's spatial size)."""
    layer, following = pair.layer, pair.following
    if isinstance(layer, nn.Conv2d):
        first = nn.Conv2d(layer.in_channels, kept, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                          bias=layer.bias is not None)
    else:
        first = nn.Linear(layer.in_features, kept, bias=layer.bias is not None)
    parts: list[nn.Module] = [first, nn.ReLU()]
    if isinstance(following, nn.Conv2d):
        if tuple(pair.following_shape[1:]) != tuple(pair.out_shape[1:]):
            parts.append(nn.AdaptiveMaxPool2d(pair.following_shape[1:]))
        parts.append(nn.Conv2d(kept, following.out_channels, following.kernel_size, following.stride,
                               following.padding, following.dilation, bias=following.bias is not None))
    elif isinstance(following, nn.Linear):
        positions = following.in_features // layer.weight.shape[0]
        if isinstance(layer, nn.Conv2d):
            parts += [nn.AdaptiveMaxPool2d(_grid(positions, *pair.out_shape[1:])), nn.Flatten()]
        parts.append(nn.Linear(kept * positions, following.out_features, bias=following.bias is not None))
    return nn.Sequential(*parts).eval()


def _export(model: nn.Module, input_shape: Sequence[int], path: Path) -> Path:
    """A timing model to ONNX with a dynamic batch axis, by torch's TorchScript exporter: ~30 ms a model where
    the dynamo exporter of compression.export takes about a second (a staircase exports dozens; the ops it
    times, Conv / Relu / MaxPool / Gemm, are the same)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, *input_shape),), str(path), dynamo=False, input_names=["input"],
                          dynamic_axes={"input": {0: "batch"}})
    return path


def _geometry(module: nn.Module | None) -> dict | None:
    """What a layer's cost depends on: its kind and shape attributes."""
    if module is None:
        return None
    if isinstance(module, nn.Conv2d):
        return {"conv": [module.in_channels, module.out_channels, list(module.kernel_size), list(module.stride),
                         list(module.padding), list(module.dilation), module.bias is not None]}
    return {"linear": [module.in_features, module.out_features, module.bias is not None]}


def staircase_key(pair: _Pair, timing: Timing) -> str:
    """Store key of a pair's staircase: its geometry, the timing setup and plan, the runtime and this CPU."""
    data = {"layer": _geometry(pair.layer), "shape": list(pair.shape), "next": _geometry(pair.following),
            "next_shape": list(pair.following_shape or []), "step": STEP, "timing": asdict(timing),
            "plan": asdict(PLAN), "runtime": ort.__version__, "cpu": platform.processor() or platform.machine(),
            "flags": cpu_flags()}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def measure(pair: _Pair, timing: Timing, store: Store) -> Staircase:
    """The pair's staircase: from the store if measured before on this machine, else timed (every candidate
    interleaved in one round robin) and stored."""
    key = staircase_key(pair, timing)
    stored = store.get(KIND, key)
    if stored is not None:
        return Staircase(stored["counts"], stored["ms"], stored["clock"])
    counts = candidate_counts(pair.layer.weight.shape[0])
    with store.workdir() as tmp:
        paths = [_export(_pair_model(pair, k), pair.shape, tmp / f"{k}.onnx") for k in counts]
        timed = time_interleaved(paths, pair.shape, timing.batch, timing.threads, PLAN, timing.provider)
    staircase = Staircase(counts, [t.clocked for t in timed], timed[0].clock)
    stored = store.put(KIND, key, asdict(staircase))
    return Staircase(stored["counts"], stored["ms"], stored["clock"])


def staircases(model: nn.Module, input_shape: Sequence[int], timing: Timing, store: Store,
               progress: ProgressFn = silent) -> dict[str, Staircase]:
    """The staircase of every prunable layer of `model` but the output layer (and grouped convolutions, which
    torch-pruning prunes with their inputs), by layer name."""
    pairs = _pairs(model, input_shape)
    result = {}
    for i, (name, pair) in enumerate(pairs.items(), 1):
        progress(Progress("prune", f"latency staircase {i}/{len(pairs)}: {name}"))
        result[name] = measure(pair, timing, store)
    return result


def choose_counts(model: nn.Module, ratio: float, input_shape: Sequence[int], timing: Timing, store: Store,
                  progress: ProgressFn = silent) -> list[LayerChoice]:
    """Per measured layer, the channels `ratio` asks it to keep and the count chosen on its staircase."""
    layers = dict(prunable_layers(model))
    choices = []
    for name, stairs in staircases(model, input_shape, timing, store, progress).items():
        channels = layers[name].weight.shape[0]
        asked = kept_channels(channels, ratio)
        choices.append(LayerChoice(name, channels, asked, stairs.choose(asked)))
    return choices
