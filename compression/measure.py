"""Measurements by the protocol of docs/ARCHITECTURE.md: accuracy and latency in the recipe's runtime (onnxruntime,
or OpenVINO imported only when asked for), size, parameters, FLOPs, provenance."""

import fcntl
import gzip
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from compression import settings
from compression.catalog import PROVIDERS, RUNTIMES
from compression.errors import CompressionError
from compression.data import Split
from compression.layouts import disabled_optimizers
from compression.result import Latency, LayerSparsity, Provenance
from compression.stats import Interval, ratio_interval
from compression.train import training_device


@dataclass(frozen=True)
class TimingPlan:
    """How long to time: warm-up runs, then at least `min_runs` and `min_seconds` per model, at most `max_runs`."""

    warmup: int = 20
    min_runs: int = 100
    min_seconds: float = 1.0
    max_runs: int = 5000


@dataclass(frozen=True)
class Timing:
    """Where a model is measured: batch, intra-op threads, onnxruntime execution provider and runtime (a
    recipe's setup)."""

    batch: int = 32
    threads: int = 1
    provider: str = "cpu"
    runtime: str = "onnxruntime"


def check_provider(provider: str) -> None:
    """Refuse, in one line, an execution provider this onnxruntime build does not have."""
    available = ort.get_available_providers()
    if PROVIDERS[provider] not in available:
        have = ", ".join(name for name, full in PROVIDERS.items() if full in available)
        raise CompressionError(f"--provider {provider}: this onnxruntime has no {PROVIDERS[provider]} (it has "
                               f"{have}); install the onnxruntime build that brings it")


def session(path: Path, threads: int = 1, provider: str = "cpu", profile_prefix: str | None = None
            ) -> ort.InferenceSession:
    """An onnxruntime session on `provider` (CPU for the ops it lacks) with fixed intra-op threads, spinning
    off, full graph optimisation but the optimizers the file asks to have off (layouts.disabled_optimizers);
    profiling each run into a file starting `profile_prefix`, if given."""
    options = ort.SessionOptions()
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    providers = list(dict.fromkeys([PROVIDERS[provider], PROVIDERS["cpu"]]))  # the CPU runs what it lacks
    return ort.InferenceSession(str(path), options, providers=providers,
                                disabled_optimizers=disabled_optimizers(path))


@lru_cache(maxsize=1)
def _openvino() -> ModuleType:
    """The openvino package, imported on first use (the default runtime never loads it); one line if absent."""
    try:
        import openvino
    except ImportError:
        raise CompressionError("--runtime openvino: the openvino package is not installed (pip install "
                               "openvino, the version requirements.txt pins)") from None
    return openvino


@lru_cache(maxsize=1)
def _openvino_core() -> Any:
    """One openvino.Core a process (its plugins load once)."""
    return _openvino().Core()


def check_runtime(runtime: str, provider: str = "cpu") -> None:
    """Refuse, in one line, a runtime this machine cannot run: an unknown one, openvino not installed, or an
    execution provider this onnxruntime lacks."""
    if runtime not in RUNTIMES:
        raise CompressionError(f"unknown runtime '{runtime}': choose one of {', '.join(RUNTIMES)}")
    if runtime == "openvino":
        _openvino()
    else:
        check_provider(provider)


Runner = Callable[[np.ndarray], np.ndarray]  # a batch in, the model's first output out


def runner(path: Path, threads: int = 1, runtime: str = "onnxruntime", provider: str = "cpu",
           shape: Sequence[int] | None = None) -> Runner:
    """The ONNX file at `path` ready to run in `runtime` with `threads` intra-op threads (onnxruntime: on
    `provider`, see `session`; openvino: see `_openvino_runner`, compiled for the input `shape` if given)."""
    if runtime == "openvino":
        return _openvino_runner(path, threads, shape)
    sess = session(path, threads, provider)
    name = sess.get_inputs()[0].name
    return lambda feed: sess.run(None, {name: feed})[0]


def _openvino_runner(path: Path, threads: int, shape: Sequence[int] | None = None) -> Runner:
    """OpenVINO's CPU plugin on the ONNX file (a QDQ file runs as int8): `threads` inference threads, one
    stream, the latency hint, float32 precision (its default on a CPU with bf16 is bfloat16, not the file as
    written), threads not pinned to cores (a shared machine); compiled for a static input `shape` when one is
    given (as OpenVINO is deployed for a fixed batch: its dynamic-shape path costs more per call, most at
    batch 1), the input read in place. With one thread, a synchronous request runs on the calling thread, as
    onnxruntime's does."""
    core = _openvino_core()
    model = core.read_model(str(path))
    if shape is not None:
        model.reshape(list(shape))
    request = core.compile_model(model, "CPU", {
        "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32", "ENABLE_CPU_PINNING": False}).create_infer_request()
    return lambda feed: request.infer(feed, share_inputs=True)[0]


def runtime_label(runtime: str = "onnxruntime", provider: str = "cpu") -> str:
    """The runtime as figures name it, with its version: 'onnxruntime 1.32.0 CPUExecutionProvider',
    'openvino 2026.4.1 CPU'."""
    if runtime == "openvino":
        return f"openvino {metadata.version('openvino')} CPU"
    return f"onnxruntime {ort.__version__} {PROVIDERS[provider]}"


def onnx_logits(path: Path, x: torch.Tensor, batch_size: int = 512, runtime: str = "onnxruntime") -> np.ndarray:
    """Logits of the ONNX model at `path` for all of `x`, computed by `runtime` (on its CPU)."""
    run = runner(path, torch.get_num_threads(), runtime)
    return np.concatenate([run(x[i:i + batch_size].numpy()) for i in range(0, len(x), batch_size)])


def onnx_predictions(path: Path, split: Split, runtime: str = "onnxruntime") -> np.ndarray:
    """The class the deployable ONNX file predicts for each image of `split`, run in `runtime`."""
    return onnx_logits(path, split.x, runtime=runtime).argmax(1)


def onnx_accuracy(path: Path, split: Split, runtime: str = "onnxruntime") -> float:
    """Top-1 accuracy of the deployable ONNX file on `split`, run in `runtime`."""
    return float((onnx_predictions(path, split, runtime) == split.y.numpy()).mean())


@contextmanager
def benchmark_lock() -> Iterator[None]:
    """Hold the machine-wide latency lock so that parallel sessions never time at the same moment."""
    settings.home().mkdir(parents=True, exist_ok=True)
    with open(settings.home() / "latency.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Rounds:
    """An interleaved timing kept round by round (row: a round, column: a model, in the order given): wall ms
    and the calling thread's CPU ms, the clock speed-ups are taken from being CPU time with one thread."""

    wall: np.ndarray
    cpu: np.ndarray
    batch: int
    threads: int

    @property
    def latencies(self) -> list[Latency]:
        """Each model's Latency: wall percentiles, and the CPU p50 with one thread."""
        return [Latency(p50=float(np.percentile(t, 50)), p90=float(np.percentile(t, 90)), batch=self.batch,
                        threads=self.threads, runs=len(t),
                        cpu_p50=float(np.percentile(c, 50)) if self.threads == 1 else None)
                for t, c in zip(self.wall.T, self.cpu.T)]

    def speedup_interval(self, model: int, baseline: int) -> Interval:
        """The 95 % interval of model `model`'s speed-up over model `baseline` from the paired rounds, on the
        clock `Latency.clocked` uses (stats.ratio_interval)."""
        clocked = self.cpu if self.threads == 1 else self.wall
        return ratio_interval(clocked[:, baseline], clocked[:, model])


def time_interleaved(paths: Sequence[Path], input_shape: Sequence[int], batch: int, threads: int,
                     plan: TimingPlan = TimingPlan(), provider: str = "cpu", runtime: str = "onnxruntime"
                     ) -> list[Latency]:
    """Latency of each ONNX model in `runtime` (onnxruntime: on `provider`), timed round-robin (one run each per
    round) under the benchmark lock; inputs are fed from host memory. Wall time always; the calling thread's CPU
    time with one thread (either runtime then runs every kernel on it; with more, a pool's threads do the
    work)."""
    return time_rounds(paths, input_shape, batch, threads, plan, provider, runtime).latencies


def time_rounds(paths: Sequence[Path], input_shape: Sequence[int], batch: int, threads: int,
                plan: TimingPlan = TimingPlan(), provider: str = "cpu", runtime: str = "onnxruntime") -> Rounds:
    """`time_interleaved`, its rounds kept (for the interval of a speed-up)."""
    runners = [runner(p, threads, runtime, provider, (batch, *input_shape)) for p in paths]
    return runner_rounds(runners, input_shape, batch, threads, plan)


def time_runners(runners: Sequence[Runner], input_shape: Sequence[int], batch: int, threads: int,
                 plan: TimingPlan = TimingPlan()) -> list[Latency]:
    """Latency of each prepared model (`runner`: one file in one runtime, so runtimes may be interleaved too),
    timed round-robin under the benchmark lock as `time_interleaved` describes."""
    return runner_rounds(runners, input_shape, batch, threads, plan).latencies


def runner_rounds(runners: Sequence[Runner], input_shape: Sequence[int], batch: int, threads: int,
                  plan: TimingPlan = TimingPlan()) -> Rounds:
    """`time_runners`, its rounds kept."""
    rng = np.random.default_rng(0)
    feed = rng.standard_normal((batch, *input_shape)).astype(np.float32)
    wall: list[list[float]] = []
    cpu: list[list[float]] = []  # the calling thread's CPU time: valid with one thread
    with benchmark_lock():
        for _ in range(plan.warmup):
            for run in runners:
                run(feed)
        started = time.perf_counter()
        while len(wall) < plan.max_runs and (
                len(wall) < plan.min_runs or time.perf_counter() - started < plan.min_seconds * len(runners)):
            wall.append([])
            cpu.append([])
            for run in runners:
                t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
                run(feed)
                wall[-1].append((time.perf_counter_ns() - t0) / 1e6)
                cpu[-1].append((time.thread_time_ns() - c0) / 1e6)
    return Rounds(np.array(wall), np.array(cpu), batch, threads)


def file_sizes(path: Path) -> tuple[int, int]:
    """Bytes of a file and of its gzip (level 9) compression, where unstructured zeros show."""
    raw = path.read_bytes()
    return len(raw), len(gzip.compress(raw, compresslevel=9, mtime=0))


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The conv and linear layers of `model`, by qualified name."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def layer_sparsity(model: nn.Module) -> list[LayerSparsity]:
    """Weight count and non-zero count of every conv / linear layer."""
    return [LayerSparsity(name=n, shape=list(m.weight.shape), weights=m.weight.numel(),
                          nonzero=int(torch.count_nonzero(m.weight))) for n, m in prunable_layers(model)]


def count_params(model: nn.Module) -> tuple[int, int]:
    """Total and non-zero parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(int(torch.count_nonzero(p)) for p in params)


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one sample through `model`, by torch.utils.flop_counter (a masked weight still counts)."""
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, *input_shape))
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class Counts:
    """A model's parameter and FLOP counts and its layers' sparsity, with what they were counted from."""

    params_total: int
    params_nonzero: int
    flops: int
    layers: list[LayerSparsity]
    source: str


def torch_counts(model: nn.Module, input_shape: Sequence[int]) -> Counts:
    """Counts of a torch model: its parameters, and FLOPs by torch's flop counter."""
    total, nonzero = count_params(model)
    return Counts(total, nonzero, count_flops(model, input_shape), layer_sparsity(model), "torch")


def onnx_counts(path: Path, input_shape: Sequence[int]) -> Counts:
    """Counts of a float ONNX file without a torch form: its float initializers as parameters, and the FLOPs of
    its Conv, Gemm and MatMul nodes for one image (2 per multiply-add, as torch's counter counts them), from
    onnx's shape inference."""
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(path))
    graph = model.graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    floats = [w for w in weights.values() if np.issubdtype(w.dtype, np.floating)]
    for value in graph.input:
        if value.name not in weights and value.type.tensor_type.shape.dim:
            value.type.tensor_type.shape.dim[0].dim_value = 1  # one image
    inferred = shape_inference.infer_shapes(model).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in (*inferred.input, *inferred.value_info, *inferred.output)}
    shapes.update({name: list(w.shape) for name, w in weights.items()})
    flops = sum(_node_flops(node, shapes) for node in graph.node)
    return Counts(sum(w.size for w in floats), sum(int(np.count_nonzero(w)) for w in floats), flops, [],
                  "onnx graph (Conv, Gemm, MatMul)")


def _node_flops(node: onnx.NodeProto, shapes: dict[str, list[int]]) -> int:
    """2 × the multiply-adds of a Conv, Gemm or MatMul node whose shapes inferred (0 for other nodes)."""
    if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
        return 0
    out, first, second = (shapes.get(n) for n in (node.output[0], *node.input[:2]))
    if not out or not first or not second or 0 in out:
        return 0
    if node.op_type == "Conv":  # each output value sums (in channels / groups) × kernel products
        return 2 * math.prod(out) * math.prod(second[1:])
    transposed = node.op_type == "Gemm" and any(a.name == "transA" and a.i for a in node.attribute)
    inner = first[0] if transposed else first[-1]
    return 2 * math.prod(out) * inner


def cpu_flags() -> dict[str, bool]:
    """Which vector extensions that matter for onnxruntime speed this CPU has."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return {flag: flag in flags for flag in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")}


def provenance(threads: int, batch: int, provider: str = "cpu", runtime: str = "onnxruntime") -> Provenance:
    """Where and how the numbers were measured: the runtime (with onnxruntime, the provider of latency;
    accuracy: its CPU provider), threads, batch, CPU, library versions."""
    packages = ("torch", "torchvision", "onnx", "onnxruntime", "torch-pruning", "scikit-learn")
    packages += ("openvino",) if runtime == "openvino" else ()
    return Provenance(runtime=runtime_label(runtime, provider), threads=threads, batch=batch,
                      cpu=platform.processor() or platform.machine(), cpu_count=os.cpu_count(),
                      cpu_flags=cpu_flags(), python=platform.python_version(),
                      versions={p: metadata.version(p) for p in packages}, training_device=str(training_device()))
