"""Where the time goes: onnxruntime's per-node profile of a stored result's deployable file beside its
baseline's, run interleaved under the benchmark lock with the result's own timing setup (threads, batch,
provider).

Each node's time is the median over the profiled runs of the runtime's own kernel timing; the kernel family
it ran in is read from the optimized graph's names (NCHWc blocked float convolutions, NHWC uint8 pooling,
QLinear int8 kernels, ConvInteger from dynamic quantization, Q/DQ boundaries, fused float kernels). The
compute layers (convolutions and matrix products) of the two graphs are compared in order — the first conv
of one against the first of the other — and those slower than in the baseline beyond TOLERANCE (and by more
than the noise floor) are named. `diagnose` says in words which known cause applies, from the graph's
structure (channel counts, zeros, kernels), quantified by the measured times. `explain` gives any stored
Result's likely causes where its timed speed-up falls short of the one its work predicts: its profile's, or
without one the same rules read from what the Result records (`structure_layers`), labelled so."""

from __future__ import annotations

import json
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from compression.errors import CompressionError
from compression.layouts import CHANNEL_BLOCK
from compression.recipe import Recipe
from compression.result import Result
from compression.store import Store

KIND = "profile"  # the store's rows of profiles, keyed by the result's recipe hash
RUNS = 200  # profiled runs of each model (the first WARMUP not counted)
WARMUP = 20
TOLERANCE = 0.10  # a layer more than 10 % slower than its baseline counterpart is named slower…
FLOOR = 0.02      # … and by more than 2 % of the baseline's run (a few microseconds are the timer's noise)
CONV_OPS = {"Conv", "FusedConv", "QLinearConv", "ConvInteger", "ConvTranspose"}
CALL_FLOPS = 2e6  # a call (batch × FLOPs a sample) under this much work is mostly onnxruntime's per-call cost
SHORTFALL = 0.10  # a timed speed-up more than 10 % below the one its work predicts needs a cause
SPARSE = 0.05  # a model with more of its weights zero than this has zeros a dense kernel still multiplies
MATMUL_OPS = {"Gemm", "FusedGemm", "QGemm", "MatMul", "FusedMatMul", "MatMulInteger", "QLinearMatMul",
              "MatMulIntegerToFloat", "DynamicQuantizeMatMul"}


def kernel_of(name: str, op: str) -> str:
    """The kernel family a node of onnxruntime's optimized graph ran in, from its op and name."""
    if op in ("ReorderInput", "ReorderOutput"):
        return "NCHWc reorder"
    if name.endswith("_nchwc"):
        return "NCHWc float"
    if op.startswith("Nhwc"):
        return "NHWC uint8"
    if op.startswith("QLinear") or op == "QGemm":
        return "QLinear int8"
    if op in ("ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "MatMulIntegerToFloat",
              "DynamicQuantizeMatMul"):
        return "dynamic int8"
    if op in ("QuantizeLinear", "DequantizeLinear"):
        return "Q/DQ boundary"
    if op.startswith("Fused"):
        return "fused float"
    return "float"


@dataclass(frozen=True)
class NodeTime:
    """One node of the optimized graph: its median kernel time per run, in microseconds."""

    name: str
    op: str
    kernel: str
    us: float

    @property
    def compute(self) -> str | None:
        """'conv' or 'matmul' for a compute layer, else None."""
        return "conv" if self.op in CONV_OPS else "matmul" if self.op in MATMUL_OPS else None


@dataclass(frozen=True)
class Profile:
    """A model's profile: the nodes in execution order and the median run, with what is outside the nodes
    (the per-call overhead: input and output copies, the executor)."""

    batch: int
    threads: int
    runs: int
    run_us: float
    nodes: list[NodeTime]

    @property
    def overhead_us(self) -> float:
        return max(self.run_us - sum(n.us for n in self.nodes), 0.0)

    def by_kernel(self) -> dict[str, float]:
        """Microseconds per run in each kernel family, largest first."""
        totals: dict[str, float] = defaultdict(float)
        for node in self.nodes:
            totals[node.kernel] += node.us
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def by_op(self) -> dict[str, float]:
        """Microseconds per run in each op, largest first."""
        totals: dict[str, float] = defaultdict(float)
        for node in self.nodes:
            totals[node.op] += node.us
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def layers(self) -> list[tuple[str, NodeTime]]:
        """The compute layers in order, labelled 'conv 1', 'conv 2', 'matmul 1', …"""
        counts: dict[str, int] = defaultdict(int)
        labelled = []
        for node in self.nodes:
            if node.compute:
                counts[node.compute] += 1
                labelled.append((f"{node.compute} {counts[node.compute]}", node))
        return labelled


@dataclass(frozen=True)
class LayerComparison:
    """A compute layer of the result beside the baseline's layer of the same label."""

    label: str
    op: str
    kernel: str
    us: float
    baseline_op: str | None
    baseline_kernel: str | None
    baseline_us: float | None
    floor_us: float  # a difference below this is noise
    channels: tuple[int | None, int] | None = None  # the layer's (input, output) channels in the deployable file

    @property
    def ratio(self) -> float | None:
        return self.us / self.baseline_us if self.baseline_us else None

    @property
    def slower(self) -> bool:
        return (self.ratio is not None and self.ratio > 1 + TOLERANCE
                and self.us - (self.baseline_us or 0.0) > self.floor_us)


@dataclass(frozen=True)
class Finding:
    """One cause of "smaller but not (as much) faster" that applies, in words (with its measured figures where a
    profile measured them)."""

    cause: str  # narrow-int8-conv, dense-zeros, off-simd-block, dynamic-int8, conversions, no-vnni, call-overhead,
    text: str   # not-timed


@dataclass(frozen=True)
class ProfileReport:
    """A stored result's profile beside its baseline's, layer by layer."""

    recipe_hash: str
    technique: str
    result: Profile
    baseline: Profile
    layers: list[LayerComparison]
    findings: list[Finding]
    predicted: float | None  # the speed-up the FLOPs ratio predicts
    measured: float | None   # the speed-up timed with the result (latency p50, interleaved)

    @property
    def slower(self) -> list[LayerComparison]:
        return [layer for layer in self.layers if layer.slower]

    def to_dict(self) -> dict:
        def profile(p: Profile) -> dict:
            return {**asdict(p), "overhead_us": p.overhead_us, "by_kernel": p.by_kernel(), "by_op": p.by_op()}

        return {"recipe_hash": self.recipe_hash, "technique": self.technique, "result": profile(self.result),
                "baseline": profile(self.baseline),
                "layers": [{**asdict(layer), "ratio": layer.ratio, "slower": layer.slower} for layer in self.layers],
                "slower": [layer.label for layer in self.slower], "findings": [asdict(f) for f in self.findings],
                "predicted_speedup": self.predicted, "measured_speedup": self.measured}

    def lines(self) -> list[str]:
        """The comparison as a text table, for the terminal."""
        out = [f"{self.technique} ({self.recipe_hash}): {self.result.run_us:.0f} µs a run against the baseline's "
               f"{self.baseline.run_us:.0f} µs (batch {self.result.batch}, {self.result.threads} thread(s), median of "
               f"{self.result.runs} profiled runs)",
               f"{'layer':<10} {'op (kernel)':<34} {'µs':>8}   {'baseline op (kernel)':<34} {'µs':>8} {'×':>6}"]
        for layer in self.layers:
            base = f"{layer.baseline_op} ({layer.baseline_kernel})" if layer.baseline_op else "—"
            ratio = f"{layer.ratio:.2f}" if layer.ratio is not None else "—"
            mark = "  slower" if layer.slower else ""
            out.append(f"{layer.label:<10} {f'{layer.op} ({layer.kernel})':<34} {layer.us:>8.1f}   {base:<34} "
                       f"{layer.baseline_us or 0:>8.1f} {ratio:>6}{mark}")
        for name, p in (("result", self.result), ("baseline", self.baseline)):
            kernels = ", ".join(f"{k} {us:.0f}" for k, us in p.by_kernel().items())
            out.append(f"{name}: {kernels}, outside the nodes {p.overhead_us:.0f} (µs a run)")
        if self.predicted is not None and self.measured is not None:
            out.append(f"FLOPs predict {self.predicted:.2f}× the baseline's speed; measured {self.measured:.2f}×")
        out += [f"- {finding.text}" for finding in self.findings]
        return out


def _profiled(events: list[dict], warmup: int) -> tuple[float, list[NodeTime]]:
    """The median run and the median time of each node (in first-seen order) from a profile's events, the
    first `warmup` runs left out."""
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    if len(runs) <= warmup:
        raise CompressionError("the runtime's profile holds no timed run")
    start = runs[warmup]["ts"]
    times: dict[str, list[float]] = {}
    ops: dict[str, str] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and event["ts"] >= start:
            name = event["name"].removesuffix("_kernel_time")
            times.setdefault(name, []).append(float(event["dur"]))
            ops[name] = event.get("args", {}).get("op_name", "?")
    nodes = [NodeTime(name, ops[name], kernel_of(name, ops[name]), statistics.median(durs))
             for name, durs in times.items()]
    return statistics.median(float(r["dur"]) for r in runs[warmup:]), nodes


def profile_onnx(paths: list[Path], batch: int, threads: int, provider: str = "cpu", runs: int = RUNS) -> list[Profile]:
    """The profile of each ONNX model of `paths`, run round-robin (one run each per round) under the benchmark
    lock, on random inputs of the model's own input shape."""
    from compression.measure import benchmark_lock, session

    with tempfile.TemporaryDirectory() as tmp:
        sessions = [session(path, threads, provider, profile_prefix=str(Path(tmp) / f"model{i}"))
                    for i, path in enumerate(paths)]
        feeds = []
        for sess in sessions:
            shape = tuple(int(d) for d in sess.get_inputs()[0].shape[1:])
            feeds.append({sess.get_inputs()[0].name: np.random.default_rng(0).standard_normal(
                (batch, *shape)).astype(np.float32)})
        with benchmark_lock():
            for _ in range(WARMUP + runs):
                for sess, feed in zip(sessions, feeds):
                    sess.run(None, feed)
        profiles = []
        for sess in sessions:
            events = json.loads(Path(sess.end_profiling()).read_text())
            run_us, nodes = _profiled(events, WARMUP)
            profiles.append(Profile(batch, threads, runs, run_us, nodes))
    return profiles


def compare(result: Profile, baseline: Profile, channels: list[tuple[int, int]] | None = None
            ) -> list[LayerComparison]:
    """The result's compute layers beside the baseline's of the same label; `channels`: the result's convs'
    (input, output) channels in order."""
    base = dict(baseline.layers())
    convs = iter(channels or [])
    return [LayerComparison(label, node.op, node.kernel, node.us, *(
        (base[label].op, base[label].kernel, base[label].us) if label in base else (None, None, None)),
        FLOOR * baseline.run_us, next(convs, None) if node.compute == "conv" else None)
        for label, node in result.layers()]


def conv_channels(path: Path) -> list[tuple[int, int]]:
    """The (input, output) channels of each convolution of an ONNX file, in graph order, read from its weight
    (directly, or through the DequantizeLinear of a Q/DQ graph)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    dequantized = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    channels = []
    for node in graph.node:
        if node.op_type in ("Conv", "ConvInteger", "QLinearConv"):
            weight = node.input[3 if node.op_type == "QLinearConv" else 1]
            dims = shapes.get(dequantized.get(weight, weight))
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            if dims and len(dims) >= 2:
                channels.append((dims[1] * group, dims[0]))
    return channels


def simd_block(flags: dict[str, bool] | None = None) -> int:
    """The channel block of onnxruntime's NCHWc float convolutions on a CPU with `flags` (default: this one): 16
    with AVX-512, else 8."""
    from compression.measure import cpu_flags

    return 16 if (cpu_flags() if flags is None else flags).get("avx512f") else 8


def structure_layers(result: Result) -> list[LayerComparison]:
    """The compute layers as the Result records them (its conv and linear weights, in the model's order), each in
    the kernel family its quantization mode runs in on onnxruntime's CPU provider, untimed: what `diagnose`
    reads where there is no profile. A conv's input channels are its weight's, except a later conv with one
    input channel a group (depthwise: its count is not recorded); an INT8 layout's first conv as the file has it
    (padded to whole channel blocks, or in float)."""
    mode = (result.recipe.get("quant") or {}).get("mode")
    integer = {"int8-static": "QLinear int8", "int8-dynamic": "dynamic int8"}.get(mode)
    choice = result.quant.layout_choice if result.quant is not None else None
    layout = choice.layout if choice is not None else "plain"
    counts: dict[str, int] = defaultdict(int)
    layers = []
    for layer in result.layers:
        compute = "conv" if len(layer.shape) == 4 else "matmul"
        counts[compute] += 1
        first = compute == "conv" and counts["conv"] == 1
        kernel = integer or ("NCHWc float" if compute == "conv" and mode in (None, "fp32") else "float")
        inputs = layer.shape[1] if compute == "conv" else 0
        if first and layout == "float-first":
            kernel = "NCHWc float"
        elif first and layout == "pad-channels":
            inputs += -inputs % CHANNEL_BLOCK
        channels = ((inputs if first or inputs > 1 else None, layer.shape[0]) if compute == "conv" else None)
        layers.append(LayerComparison(f"{compute} {counts[compute]}", compute, kernel, 0.0, None, None, None, 0.0,
                                      channels))
    return layers


def diagnose(result: Result, layers: list[LayerComparison], profile: Profile | None = None,
             flags: dict[str, bool] | None = None) -> list[Finding]:
    """The known causes that apply to `result`. With its `profile` (and `layers` compared with the baseline's),
    each is quantified by the times measured; without, they are read from the model's structure
    (`structure_layers`, its zeros, its timing setup), worded the same without the figures. `flags`: the CPU's
    vector extensions (default: this machine's, where the profile runs; empty: not known)."""
    if flags is None:
        from compression.measure import cpu_flags

        flags = cpu_flags()
    findings = []
    run = (profile.run_us or 1.0) if profile else 1.0
    for layer in layers:
        if layer.channels and layer.channels[0] and layer.kernel in ("QLinear int8", "dynamic int8") and \
                layer.channels[0] % CHANNEL_BLOCK:
            timed = (f" and runs {layer.ratio:.2f}× the baseline's float time" if layer.ratio else "") + (
                f" ({layer.us / run:.0%} of the run)" if profile else "")
            findings.append(Finding("narrow-int8-conv", (
                f"{layer.label} has {layer.channels[0]} input channel(s), not a multiple of {CHANNEL_BLOCK}: "
                f"onnxruntime's fast int8 convolution does not apply{timed}; keeping that first block in float, or "
                "padding the input to 4 channels, avoids it")))
    dense = [layer for layer in layers if layer.kernel in ("NCHWc float", "fused float", "float")]
    if result.sparsity > SPARSE and dense:
        timed = ""
        if profile:
            ratio = sum(layer.us for layer in dense) / max(sum(layer.baseline_us or 0 for layer in dense), 1e-9)
            timed = f": the compute layers take {ratio:.2f}× the baseline's time"
        findings.append(Finding("dense-zeros", (
            f"{result.sparsity:.0%} of the weights are zeros, but the dense kernels still multiply them{timed}; only "
            "structured pruning (removed channels) shrinks the work")))
    block = simd_block(flags)
    off = [layer for layer in layers if layer.channels and layer.kernel == "NCHWc float" and layer.channels[1] % block]
    if result.recipe.get("prune") and off:
        names = ", ".join(f"{layer.label} keeps {layer.channels[1]}" for layer in off)
        findings.append(Finding("off-simd-block", (
            f"{names} output channels, not a multiple of {block} (the NCHWc block on this CPU): partial blocks "
            f"are padded, and a count that breaks it can push the next conv off the fast path; --prune-round-to "
            f"{block} keeps whole blocks")))
    dynamic = sum(n.us for n in profile.nodes if n.kernel == "dynamic int8") if profile else None
    if dynamic or (profile is None and any(layer.kernel == "dynamic int8" for layer in layers)):
        timed = f": {dynamic:.0f} µs, {dynamic / run:.0%} of the run" if dynamic else ""
        findings.append(Finding("dynamic-int8", (
            f"dynamic quantization runs ConvInteger / MatMulInteger and quantizes activations at every call{timed}; "
            "int8-static calibrates the scales once")))
    if profile:
        conversions = sum(n.us for n in profile.nodes if n.kernel in ("Q/DQ boundary", "NCHWc reorder")
                          or n.op == "Transpose")
        if conversions > 0.1 * run:
            findings.append(Finding("conversions", (
                f"layout and precision conversions (Quantize/Dequantize, Transpose, NCHWc reorders) take "
                f"{conversions:.0f} µs, {conversions / run:.0%} of the run: islands of float between int8 layers, or "
                "a layout change per layer, cost what the kernels save")))
    elif result.quant is not None and result.quant.runs_integer is False and result.quant.float_compute_ops:
        ops = ", ".join(f"{op} ×{n}" for op, n in result.quant.float_compute_ops.items())
        findings.append(Finding("conversions", (
            f"float compute ops are left in the int8 graph ({ops}): each island of float between int8 layers costs "
            "a Dequantize / Quantize pair")))
    kernels = [n.kernel for n in profile.nodes] if profile else [layer.kernel for layer in layers]
    if flags and any(k in ("QLinear int8", "dynamic int8") for k in kernels) and not (
            flags.get("avx512_vnni") or flags.get("avx_vnni")):
        findings.append(Finding("no-vnni", (
            "this CPU has no VNNI (avx512_vnni / avx_vnni): an int8 dot product takes several instructions, so int8 "
            "gains less here than on a CPU with it")))
    batch = profile.batch if profile else Recipe.from_dict(result.recipe).batch
    if profile and profile.overhead_us > 0.4 * run:
        findings.append(Finding("call-overhead", (
            f"{profile.overhead_us:.0f} µs of each {run:.0f} µs run is outside the nodes (input and output copies, "
            f"the executor): at batch {batch} the per-call cost dominates, and a smaller model cannot remove it")))
    elif profile is None and batch * result.flops < CALL_FLOPS:
        findings.append(Finding("call-overhead", (
            f"a call does only {batch * result.flops / 1e6:.2g} MFLOPs (batch {batch}): the per-call cost (input and "
            "output copies, the executor) dominates, and a smaller model cannot remove it")))
    return findings


SHORT = {"narrow-int8-conv": "first conv too narrow for the int8 kernel", "dense-zeros": "zeros still multiplied",
         "off-simd-block": "channels off the SIMD block", "dynamic-int8": "dynamic int8 (ConvInteger)",
         "conversions": "layout / precision conversions", "no-vnni": "no VNNI on this CPU",
         "call-overhead": "per-call overhead dominates", "not-timed": "simulated: not timed"}
"""Each cause in a few words, for a table cell or a hover line."""
SOURCES = {"measured": "measured (onnxruntime's profile)", "structure": "from the model's structure"}


@dataclass(frozen=True)
class Diagnosis:
    """Why a stored result is not as fast as its work predicts: the causes that apply, from its stored profile
    (source 'measured') or, not profiled, read from what the Result records (source 'structure')."""

    expected: float | None  # the speed-up its work predicts (expected_speedup)
    measured: float | None  # the speed-up timed (None: not timed)
    source: str             # a key of SOURCES
    findings: list[Finding]

    @property
    def phrases(self) -> list[str]:
        """The causes in a few words each, or that none of the known ones was found."""
        return [SHORT.get(f.cause, f.cause) for f in self.findings] or [
            "no known cause found" + (": profile it" if self.source == "structure" else "")]

    @property
    def short(self) -> str:
        """The causes in a few words, on one line, and where they come from (a table cell)."""
        return "; ".join(self.phrases) + (" (measured)" if self.source == "measured" else " (from structure)")

    @property
    def label(self) -> str:
        """Where the causes come from, in words."""
        return SOURCES[self.source]


def expected_speedup(result: Result) -> float | None:
    """The speed-up over the baseline a result's work predicts: its FLOPs ratio inverted
    (Result.predicted_speedup), and in a sparse model (over SPARSE) its zero weights counted as skipped (torch
    counts a zero's multiplications, which only a sparse kernel would skip; dense kernels doing them is the
    cause to name)."""
    predicted = result.predicted_speedup
    if predicted is None or result.sparsity <= SPARSE:
        return predicted
    return predicted / max(1.0 - result.sparsity, 0.01)


def explain(result: Result, profile_row: dict | None = None) -> Diagnosis | None:
    """Why `result` is not as fast as its work predicts, or None where it is (within SHORTFALL), is the baseline,
    or has no prediction. A simulated format is not timed: that is its cause. `profile_row`: its stored profile
    (`stored`), whose measured findings are given instead of those read from the structure."""
    if result.technique == "baseline":
        return None
    expected = expected_speedup(result)
    if not result.latency_measured:
        return Diagnosis(expected, None, "structure", [Finding("not-timed", (
            "a simulated format: no runtime executes it, so it is not timed (accuracy simulated in torch, size "
            "computed from the packed bit width)"))])
    measured = result.speedup_vs_baseline
    if expected is None or measured is None or measured >= (1 - SHORTFALL) * expected:
        return None
    if profile_row is not None:
        return Diagnosis(expected, measured, "measured",
                         [Finding(f["cause"], f["text"]) for f in profile_row["findings"]])
    flags = result.provenance.cpu_flags if result.provenance else {}  # the CPU it was timed on
    return Diagnosis(expected, measured, "structure", diagnose(result, structure_layers(result), flags=flags))


def explain_all(results: Sequence[Result], profiles: Mapping[str, dict]) -> dict[str, Diagnosis]:
    """`explain` of each of `results` that needs a cause, by recipe hash; `profiles`: stored profiles by recipe
    hash (`stored_all`)."""
    return {r.recipe_hash: why for r in results if (why := explain(r, profiles.get(r.recipe_hash))) is not None}


def stored_all(store: Store) -> dict[str, dict]:
    """Every stored profile, by its result's recipe hash."""
    return {row["recipe_hash"]: row for row in store.list(KIND)}


def find_result(store: Store, hash_prefix: str) -> Result:
    """The stored result whose recipe hash starts with `hash_prefix` (one line unless exactly one does)."""
    prefix = hash_prefix.strip().lower()
    if not prefix:
        raise CompressionError("give a result's recipe hash (or its first characters)")
    whole = store.get_result(prefix)  # the app gives a whole hash: no scan
    if whole is not None:
        return whole
    matches = [r for r in store.results() if r.recipe_hash.startswith(prefix)]
    if not matches:
        raise CompressionError(f"no stored result has a recipe hash starting with {hash_prefix!r}")
    if len(matches) > 1:
        raise CompressionError(f"{len(matches)} stored results have a hash starting with {hash_prefix!r}: give more "
                               "of it")
    return matches[0]


def stored(store: Store, recipe_hash: str) -> dict | None:
    """The stored profile of a result (ProfileReport.to_dict, its text lines and where it ran), if any."""
    return store.get(KIND, recipe_hash)


def profile_and_store(store: Store, hash_prefix: str, runs: int = RUNS) -> dict:
    """Profile a stored result beside its baseline on this machine now: the report (ProfileReport.to_dict, its
    text lines, where it ran), stored unless a profile of the result is stored already (the first is kept)."""
    from compression.measure import provenance

    report = profile_result(store, hash_prefix, runs)
    recipe = Recipe.from_dict(store.get_result(report.recipe_hash).recipe)
    payload = {**report.to_dict(), "lines": report.lines(),
               "measured_on": provenance(recipe.threads, recipe.batch, recipe.provider, recipe.runtime).cpu}
    store.put(KIND, report.recipe_hash, payload)
    return payload


def profile_result(store: Store, hash_prefix: str, runs: int = RUNS) -> ProfileReport:
    """The profile of a stored result beside its baseline's, with the result's timing setup."""
    if runs < 1:
        raise CompressionError(f"runs must be at least 1, got {runs}")
    result = find_result(store, hash_prefix)
    recipe = Recipe.from_dict(result.recipe)
    if not result.latency_measured:
        raise CompressionError(f"{result.technique} is simulated: it has no deployable file to profile")
    if recipe.runtime != Recipe.runtime:
        raise CompressionError(f"{result.recipe_hash} was measured in {recipe.runtime}: the profile is onnxruntime's "
                               "per-node profiler; profile the same recipe without --runtime")
    baseline = store.get_result(recipe.baseline().hash)
    if baseline is None:
        raise CompressionError(f"the baseline of {result.recipe_hash} is not stored")
    onnx_file = store.path(result, "model.onnx")
    mine, base = profile_onnx([onnx_file, store.path(baseline, "model.onnx")], recipe.batch, recipe.threads,
                              recipe.provider, runs)
    layers = compare(mine, base, conv_channels(onnx_file))
    return ProfileReport(result.recipe_hash, result.technique, mine, base, layers, diagnose(result, layers, mine),
                         result.predicted_speedup, result.speedup_vs_baseline)
