"""Measurements by the protocol of docs/ARCHITECTURE.md: onnxruntime accuracy and latency, size, parameters, FLOPs,
provenance."""

import fcntl
import gzip
import os
import platform
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from compression import settings
from compression.data import Split
from compression.result import Latency, LayerSparsity, Provenance
from compression.train import training_device


@dataclass(frozen=True)
class TimingPlan:
    """How long to time: warm-up runs, then at least `min_runs` and `min_seconds` per model, at most `max_runs`."""

    warmup: int = 20
    min_runs: int = 100
    min_seconds: float = 1.0
    max_runs: int = 5000


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU onnxruntime session with fixed intra-op threads, spinning off, full graph optimisation."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_logits(path: Path, x: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """Logits of the ONNX model at `path` for all of `x`, computed by onnxruntime."""
    sess = session(path, threads=torch.get_num_threads())
    name = sess.get_inputs()[0].name
    chunks = [sess.run(None, {name: x[i:i + batch_size].numpy()})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(chunks)


def onnx_accuracy(path: Path, split: Split) -> float:
    """Top-1 accuracy of the deployable ONNX file on `split`, run in onnxruntime."""
    return float((onnx_logits(path, split.x).argmax(1) == split.y.numpy()).mean())


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


def time_interleaved(paths: Sequence[Path], input_shape: Sequence[int], batch: int, threads: int,
                     plan: TimingPlan = TimingPlan()) -> list[Latency]:
    """Latency of each ONNX model, timed round-robin (one run each per round) under the benchmark lock."""
    rng = np.random.default_rng(0)
    feed = rng.standard_normal((batch, *input_shape)).astype(np.float32)
    sessions = [session(p, threads) for p in paths]
    names = [s.get_inputs()[0].name for s in sessions]
    samples: list[list[float]] = [[] for _ in sessions]
    with benchmark_lock():
        for _ in range(plan.warmup):
            for sess, name in zip(sessions, names):
                sess.run(None, {name: feed})
        started = time.perf_counter()
        while len(samples[0]) < plan.max_runs and (
                len(samples[0]) < plan.min_runs or time.perf_counter() - started < plan.min_seconds * len(paths)):
            for sess, name, times in zip(sessions, names, samples):
                t0 = time.perf_counter_ns()
                sess.run(None, {name: feed})
                times.append((time.perf_counter_ns() - t0) / 1e6)
    return [Latency(p50=float(np.percentile(t, 50)), p90=float(np.percentile(t, 90)), batch=batch,
                    threads=threads, runs=len(t)) for t in samples]


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


def cpu_flags() -> dict[str, bool]:
    """Which vector extensions that matter for onnxruntime speed this CPU has."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return {flag: flag in flags for flag in ("avx2", "avx512f", "avx512_vnni", "amx_int8")}


def provenance(threads: int, batch: int) -> Provenance:
    """Where and how the numbers were measured: runtime, threads, batch, CPU, library versions."""
    packages = ("torch", "torchvision", "onnx", "onnxruntime", "torch-pruning", "scikit-learn")
    return Provenance(runtime=f"onnxruntime {ort.__version__} CPUExecutionProvider", threads=threads, batch=batch,
                      cpu=platform.processor() or platform.machine(), cpu_count=os.cpu_count(),
                      cpu_flags=cpu_flags(), python=platform.python_version(),
                      versions={p: metadata.version(p) for p in packages}, training_device=str(training_device()))
