"""Numbers and provenance in words, as every page, table and hover box writes them: sizes, counts, times,
accuracy differences and relative changes, and how each figure of a Result was obtained (measured,
computed, simulated, not timed). No Streamlit here, no computation: formatting only."""

from compression import pareto
from compression.result import Result, StageRecord, is_measured
from compression.stats import WITHIN_NOISE, Noise, noted  # noqa: F401 - the wording pages use through text


def fmt_bytes(n: float) -> str:
    """Bytes as B / KB / MB / GB (powers of 1024)."""
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"


def fmt_count(n: float) -> str:
    """A count with a k / M / G suffix."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{n:,.0f}"


def fmt_time(iso: str) -> str:
    """A stored result's UTC timestamp to the minute, '2026-11-22 20:20 UTC'. Never HH:MM:SS in markdown:
    Streamlit reads ':20:' as an emoji shortcode and loads its emoji table (259 KB of JavaScript) for the
    page."""
    return f"{iso[:10]} {iso[11:16]} UTC" if len(iso) >= 16 else iso


def within_noise(noise: Noise | None) -> bool:
    """Whether the rule (compression.stats) calls a delta within noise; False where it has nothing to say."""
    return noise is not None and noise.within


def points(difference: float, noise: Noise | None = None) -> str:
    """An accuracy difference (a fraction) in signed percentage points, e.g. '+0.25 pts', '+0.25 pts, within
    noise' where `noise` says so; no difference reads '±0.00 pts' (never '-0.00', and st.metric greys a
    delta that starts with ±)."""
    value = round(100 * difference, 2)
    return noted(f"{value:+.2f} pts" if value else "±0.00 pts", noise)


def change(value: float, reference: float, noise: Noise | None = None) -> str:
    """A signed relative change, e.g. '-75%', '+1%, within noise' where `noise` says so; '±0%' for none,
    'n/a' against zero. Short, so that six metrics in a row are not cut off."""
    if reference == 0:
        return "n/a"
    percent = round(100 * (value / reference - 1))
    if percent == -100 and value > 0:  # a ratio too small for whole percents: never "-100%" for what is left
        return f"{100 * (value / reference - 1):+.2f}%"
    return noted(f"{percent:+d}%" if percent else "±0%", noise)


def ratio(value: float) -> str:
    """A ratio to a reference, '0.49×'; one too small to print that way in words, '680× smaller' (never
    '0.00×')."""
    return f"{value:.2f}×" if value >= 0.01 or value <= 0 else f"{1 / value:,.0f}× smaller"


def accuracy_kind(record: Result | StageRecord) -> str:
    """'measured' (the file run in onnxruntime) or 'simulated' (torch), for legends and tables."""
    return "measured" if is_measured(record) else "simulated"


def accuracy_with_interval(result: Result) -> str:
    """'98.06% (95%: 96.05–99.07)' where the test split's size is recorded, else the accuracy alone."""
    interval = result.accuracy_interval
    if interval is None:
        return f"{result.accuracy:.2%}"
    return f"{result.accuracy:.2%} (95%: {100 * interval.low:.2f}–{100 * interval.high:.2f})"


def accuracy_mark(record: Result | StageRecord) -> str:
    """'measured (onnxruntime)' or 'simulated (torch-simulated)'."""
    return f"{accuracy_kind(record)} ({record.accuracy_source})"


def accuracy_note(record: Result | StageRecord) -> str:
    """'measured · onnxruntime, test split', as a caption under a figure."""
    return f"{accuracy_kind(record)} · {record.accuracy_source}, test split"


def size_note(result: Result) -> str:
    if result.size_source == "onnx file":
        return "measured · ONNX file bytes"
    return "computed · " + result.size_source.removeprefix("computed: ").removeprefix("computed")


def latency_note(result: Result) -> str:
    if not result.latency_measured or result.latency_ms is None:
        return "not timed · no runtime executes a simulated format"
    lat, p = result.latency_ms, result.provenance
    runtime, where = (p.runtime.split()[0], p.runtime.split()[-1].removesuffix("ExecutionProvider")) if p else (
        "onnxruntime", "CPU")
    return f"measured · {runtime} {where}, batch {lat.batch}, {lat.threads} thread(s)"


def latency_text(result: Result, baseline: Result | None) -> str:
    """'0.123 ms (×0.87)': the latency normalised to the baseline, and its ratio ('×1.01, within noise' where
    its speed-up's interval contains 1); or why there is none."""
    value = pareto.metric_value(result, "latency", baseline)
    if value is None:
        return "not timed (simulated format)"
    return f"{value:.3f} ms ({noted(f'×{1 / result.speedup_vs_baseline:.2f}', result.speedup_noise)})"


def provenance_caption(result: Result) -> str:
    """One paragraph saying how each number of `result` was obtained (markdown)."""
    parts = []
    if is_measured(result):
        parts.append(f"**Accuracy** measured: the exported ONNX file run in {result.accuracy_source} (on the CPU) on "
                     "the test split.")
    else:
        parts.append(f"**Accuracy** simulated ({result.accuracy_source}): no CPU runtime executes this format, so "
                     "the test split is scored in torch with fake quantization.")
    if result.size_source == "onnx file":
        parts.append("**Size**: bytes of the ONNX file, and of its gzip (level 9), where zeros show.")
    else:
        parts.append(f"**Size** computed, not a file: {result.size_source.removeprefix('computed: ')}.")
    if result.counts_source == "torch":
        parts.append("**FLOPs** counted per sample on the exported model (a masked weight still costs a FLOP).")
    else:
        parts.append(f"**FLOPs** and parameters counted per sample from the {result.counts_source}: the model has "
                     "no torch form.")
    if result.latency_measured and result.latency_ms is not None:
        lat, p = result.latency_ms, result.provenance
        parts.append(f"**Latency** measured in {p.runtime if p else 'onnxruntime'}: batch {lat.batch}, "
                     f"{lat.threads} intra-op thread(s), p50 of {lat.runs} runs, timed interleaved with the baseline "
                     f"in the same process; the speed-up from {lat.clock}"
                     + (" (one thread: the work runs on the calling thread, whose CPU time other processes barely "
                        "move)" if lat.cpu_p50 is not None else "")
                     + f"; CPU flags {p.flags_on if p else 'unknown'}.")
    else:
        parts.append("**Latency** not timed: a simulated format has no runtime to time.")
    parts.append(f"{'Measured' if is_measured(result) else 'Computed'} {fmt_time(result.created_at)} and stored: "
                 "these settings chosen again show it without recomputing.")
    return " ".join(parts)
