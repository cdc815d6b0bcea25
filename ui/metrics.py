"""A Result's figures as rows of st.metric: against a reference (usually its baseline) with each change and how
the figure was obtained (measured / counted / computed / simulated / not timed), the baseline's card in the
sidebar, the baseline's full row on the Overview, and what a teacher added to a distilled student."""

from dataclasses import dataclass

import streamlit as st

from compression.describe import STAGE_NAMES
from compression.pipeline import ONNX
from compression.recipe import Recipe
from compression.result import DistillReport, Latency, Result
from compression.stats import Noise, sanity_warnings
from compression.store import Store
from ui import text


@dataclass(frozen=True)
class MetricFigure:
    """One number of a Result as a page shows it: label, value, change vs the reference, how it was obtained
    (`kind`: measured / counted / computed / simulated / not timed) and a tooltip."""

    label: str
    value: str
    delta: str | None
    delta_color: str
    kind: str
    note: str
    help: str


def _color(delta: str, color: str, noise: Noise | None = None) -> str:
    """`color`, or 'off' (grey) for no change and for a change within noise."""
    return "off" if delta.startswith("±") or delta == "n/a" or text.within_noise(noise) else color


def _delta(delta: str, noise: Noise | None) -> str:
    """A metric's delta: the change, or 'within noise' where the rule says so (the change then in its tooltip:
    six metrics a row leave no room for both at 1280 px)."""
    return text.WITHIN_NOISE if text.within_noise(noise) else delta


def _why(noise: Noise | None, delta: str = "") -> str:
    """The noise rule's verdict for a tooltip, after the change `delta`: '; +0.10 pts: within noise (McNemar …,
    p = 0.4)'."""
    if noise is None:
        return ""
    return f"; {delta + ': ' if delta else ''}{text.WITHIN_NOISE if noise.within else 'beyond noise'} ({noise.test})"


def _latency_vs(result: Result, reference: Result | None) -> tuple[Latency | None, float | None, bool]:
    """(reference latency, result p50 / reference p50, timed in the same process)."""
    if not result.latency_measured or result.latency_ms is None:
        return None, None, False
    own_baseline = reference is None or reference.recipe_hash == Recipe.from_dict(result.recipe).baseline().hash
    if own_baseline and result.speedup_vs_baseline:
        return result.baseline_latency_ms, 1 / result.speedup_vs_baseline, True
    if reference is not None and reference.latency_ms is not None:
        return reference.latency_ms, result.latency_ms.p50 / reference.latency_ms.p50, False
    return None, None, False


def _ratio(label: str, ratio: float, kind: str, note: str, help_: str, noise: Noise | None = None) -> MetricFigure:
    """A figure shown as a ratio to the reference ('0.49×') with its relative change as the delta (smaller is
    better: a fall is green; grey and 'within noise' where `noise` says so)."""
    delta = text.change(ratio, 1.0)
    return MetricFigure(label, text.ratio(ratio), _delta(delta, noise), _color(delta, "inverse", noise), kind, note,
                        help_ + _why(noise, delta))


def metric_figures(result: Result, reference: Result | None = None, versus: str = "baseline") -> list[MetricFigure]:
    """Accuracy, size, gzip size, FLOPs, latency and zero weights of `result` against `reference` (its
    baseline when None: the ratios the pipeline measured), `versus` naming it in the tooltips. Ratios are the
    values ('0.49×'); relative changes are the deltas."""
    ref_acc = reference.accuracy if reference is not None else result.baseline_accuracy
    acc_kind = text.accuracy_kind(result)
    acc_noise = result.accuracy_noise(reference)
    acc_delta = text.points(result.accuracy - ref_acc)
    figures = [MetricFigure(
        "Test accuracy", f"{result.accuracy:.2%}", _delta(acc_delta, acc_noise), _color(acc_delta, "normal", acc_noise),
        acc_kind, text.accuracy_note(result),
        f"{acc_kind} in {result.accuracy_source} on the test split; {versus} {ref_acc:.2%}" + _why(acc_noise, acc_delta))]

    size_ratio = result.size_bytes / reference.size_bytes if reference else result.size_ratio_vs_baseline
    figures.append(_ratio(
        "Size", size_ratio, "measured" if result.size_source == "onnx file" else "computed", text.size_note(result),
        f"{text.fmt_bytes(result.size_bytes)} ({result.size_source})"
        + (f" vs {text.fmt_bytes(reference.size_bytes)}" if reference else "")))

    if (gzip := result.file_gzip_bytes) is not None:
        gzip_ratio = gzip / reference.size_gzip_bytes if reference else result.size_gzip_ratio_vs_baseline
        figures.append(_ratio("gzip size", gzip_ratio, "measured", "measured · gzip -9 of the file",
                              f"{text.fmt_bytes(gzip)}: where unstructured zeros show"))
    else:
        figures.append(MetricFigure("gzip size", "—", None, "off", "computed", "no file to compress",
                                    "a simulated format exists only as a torch model: there is no file to gzip"))

    flops_ratio = result.flops / reference.flops if reference else result.flops_ratio_vs_baseline
    figures.append(_ratio("FLOPs", flops_ratio, "counted", "counted · exported model",
                          f"{text.fmt_count(result.flops)} per sample; masked zeros still count"))

    ref_latency, latency_ratio, same_process = _latency_vs(result, reference)
    if latency_ratio is None:
        figures.append(MetricFigure("Latency p50", "—", None, "off", "not timed", text.latency_note(result),
                                    "no runtime executes a simulated format, so nothing was timed"))
    else:
        lat = result.latency_ms
        how = (f"timed interleaved in the same process, the ratio from {lat.clock}" if same_process
               else "timed in different processes")
        figures.append(_ratio("Latency p50", latency_ratio, "measured", text.latency_note(result),
                              f"{lat.p50:.3f} ms (p90 {lat.p90:.3f}, {lat.runs} runs)"
                              + (f" vs {versus} {ref_latency.p50:.3f} ms" if ref_latency else "") + f"; {how}",
                              result.speedup_noise if same_process else None))

    figures.append(MetricFigure(
        "Zero weights", f"{result.sparsity:.0%}", None, "off", "counted", "counted · parameters",
        f"{result.params_nonzero:,} of {result.params_total:,} parameters are non-zero"))
    return figures


def result_metrics(result: Result, reference: Result | None = None, container=st,
                   versus: str = "baseline") -> list[MetricFigure]:
    """Draw `metric_figures` as a row of st.metric in `container` under a line naming the reference, each
    with its provenance mark under it (for side by side, call it once a column-container)."""
    figures = metric_figures(result, reference, versus)
    container.caption(f"Against the {versus}: sizes, FLOPs and latency as ratios (×); under each figure its change, "
                      "green where better, grey where within noise (accuracy: McNemar's test on the paired test "
                      "predictions, else the 95 % intervals; latency: the speed-up's 95 % interval contains 1; size "
                      "and FLOPs are exact).")
    for column, fig in zip(container.columns(len(figures)), figures):
        column.metric(fig.label, fig.value, fig.delta, delta_color=fig.delta_color, help=fig.help,
                      delta_arrow="off" if fig.delta_color == "off" else "auto")
        column.caption(fig.note)
    trained = " · ".join(f"{STAGE_NAMES.get(s.stage, s.stage)} {s.stopped_text}" for s in result.stages if s.stopped_text)
    if trained:
        container.caption(f"Training: {trained}, on the validation loss; the best epoch's weights kept.")
    for warning in sanity_warnings(result):
        container.warning(warning, icon=":material/warning:")
    download_onnx(result, container)
    return figures


def download_onnx(result: Result, container=st) -> None:
    """A button that downloads the result's deployable ONNX file (read when clicked); a note for a simulated
    format, which has none."""
    if ONNX not in result.artifacts:
        container.caption("No file to download: a simulated format exists only in torch.")
        return
    path = Store().path(result, ONNX)  # the server's store ($COMPRESSION_HOME), as ui.workspace.store()
    container.download_button(f"Download the ONNX file ({text.fmt_bytes(result.size_bytes)})", path.read_bytes,
                              file_name=f"{result.technique}-{result.recipe_hash}.onnx", mime="application/octet-stream",
                              key=f"download_{result.recipe_hash}", icon=":material/download:",
                              on_click="ignore")


def baseline_card(result: Result) -> None:
    """The sidebar's card of the workspace's baseline: accuracy, size, latency and FLOPs, two a row."""
    left, right = st.columns(2)
    left.metric("Accuracy", f"{result.accuracy:.2%}", help=f"test split, measured in {result.accuracy_source}")
    gzip = "no file to gzip" if result.file_gzip_bytes is None else f"gzip {text.fmt_bytes(result.file_gzip_bytes)}"
    right.metric("Size", text.fmt_bytes(result.size_bytes), help=f"{result.size_source}; {gzip}")
    left, right = st.columns(2)
    if (lat := result.latency_ms) is not None:
        left.metric("Latency", f"{lat.p50:.3f} ms", help=f"onnxruntime p50 at batch {lat.batch}, {lat.threads} "
                    f"thread(s), {lat.runs} runs (p90 {lat.p90:.3f} ms)")
    right.metric("FLOPs", text.fmt_count(result.flops), help="per sample, counted on the exported model")
    timing = f" · p50 at batch {lat.batch}, {lat.threads} thread(s)" if lat else ""
    st.caption(f"Measured in {result.accuracy_source} on the test split{timing} · details on the Overview")
    for warning in sanity_warnings(result):
        st.warning(warning, icon=":material/warning:")


def baseline_row(base: Result) -> None:
    """The baseline's measured figures on one row: accuracy, file size, gzip size, FLOPs, and latency at the
    timing batch and at batch 1; then how they were measured."""
    latency, single = base.latency_ms, base.latency_ms_single
    cols = st.columns(6)
    cols[0].metric("Test accuracy", f"{base.accuracy:.2%}", help=f"measured in {base.accuracy_source}, test split")
    cols[1].metric("ONNX size", text.fmt_bytes(base.size_bytes), help="bytes of the deployable ONNX file")
    cols[2].metric("gzip size", text.fmt_bytes(base.size_gzip_bytes), help="where unstructured zeros show")
    cols[3].metric("FLOPs / sample", text.fmt_count(base.flops), help="counted on the exported model")
    for col, lat in ((cols[4], latency), (cols[5], single)):
        col.metric(f"Batch-{lat.batch} latency", f"{lat.p50:.3f} ms",
                   help=f"median (p50) of {lat.runs} runs of a batch of {lat.batch}; p90 {lat.p90:.3f} ms; "
                        f"{lat.threads} thread(s)")
    p = base.provenance
    st.caption(f"All measured: accuracy in onnxruntime's CPU provider, latency in "
               f"{p.runtime if p else 'onnxruntime'}, {latency.threads} intra-op thread(s), spinning off; CPU flags {p.flags_on if p else 'unknown'}. Parameters {base.params_total:,} "
               f"({base.params_nonzero:,} non-zero). Validation accuracy {base.val_accuracy:.2%}. Stored "
               f"{text.fmt_time(base.created_at)}.")


def kd_gain(report: DistillReport, test_images: int | None) -> None:
    """Teacher, KD student, label-only control and the KD gain (grey and 'within noise' where the noise rule
    says so: McNemar on the two students' test predictions, else their intervals on `test_images`), one
    metric each."""
    cols = st.columns(4)
    cols[0].metric("Teacher", f"{report.teacher_accuracy:.2%}", help=f"{report.teacher_params:,} parameters")
    cols[1].metric("KD student", f"{report.student_accuracy:.2%}", help=f"{report.student_params:,} parameters")
    cols[2].metric("Label-only control", f"{report.control_accuracy:.2%}",
                   help="same student, init, epochs and seed, trained on the labels alone")
    noise = report.kd_noise(test_images)
    verdict = None if noise is None else text.WITHIN_NOISE if noise.within else "a real difference"
    cols[3].metric("KD gain", text.points(report.kd_gain), verdict, help="KD student − control, deployed the same way"
                   + _why(noise), delta_color="off" if text.within_noise(noise) or noise is None else
                   "normal" if report.kd_gain > 0 else "inverse", delta_arrow="off")

