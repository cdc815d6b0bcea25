"""Plain-words notes on a measured result, for the technique pages: why unstructured zeros do not speed up a
dense runtime, why a pruned or quantized model can be slower, whether INT8 really ran integer kernels, what
a live grid shows for a format, how to read the accuracy-against-bits chart. Each note is (kind, message),
kind one of st's alerts ('success', 'info', 'warning'); `show` draws them."""

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from compression.recipe import Format, PruneSpec, QuantSpec
from compression.result import Result
from ui import text

Note = tuple[str, str]
ICONS = {"success": ":material/check_circle:", "info": ":material/info:", "warning": ":material/warning:"}
NOTICEABLY_SLOWER = 0.95  # a speed-up below this is called slower: within 5 % is run-to-run timing noise


def show(notes: Sequence[Note]) -> None:
    for kind, message in notes:
        getattr(st, kind)(message, icon=ICONS[kind])


def pruned(spec: PruneSpec, result: Result) -> list[Note]:
    """Why a pruning's FLOPs or latency did not fall as its zeros suggest."""
    if not spec.structured:
        return [("info", "Unstructured zeros stay in dense tensors: onnxruntime still multiplies them, so FLOPs and "
                         "latency do not fall — only the gzip size shows the sparsity.")]
    chosen = [layer for layer in result.layers if layer.channels_kept is not None]
    if chosen:  # round_to auto
        pairs = ", ".join(f"{layer.name} {layer.channels_asked} → {layer.channels_kept}" for layer in chosen)
        return [("info", f"Kept channels fit to this CPU's measured latency staircase (asked → kept): {pairs}. Each "
                         "layer keeps the fastest measured count at or above what the ratio asks.")]
    if result.speedup_vs_baseline is not None and result.speedup_vs_baseline < 1:
        channels = ", ".join(str(layer.shape[0]) for layer in result.layers[:-1])
        return [("warning", f"Fewer FLOPs, yet slower than the baseline: the kept channel counts ({channels}) are "
                            "not multiples of the CPU's SIMD block, and onnxruntime's fast convolution layout wants "
                            "them to be (16 on AVX-512, 8 on AVX2). Try rounding kept channels down to a multiple "
                            "of 16, or auto.")]
    return []


def quantized(spec: QuantSpec, result: Result) -> list[Note]:
    """Whether an INT8 file ran as integer arithmetic, and why a real format ran slower than FP32."""
    notes, report, mode = [], result.quant, spec.technique
    choice = report.layout_choice if report is not None else None
    if report is not None and report.calib_samples_used is not None and report.calib_samples_used < spec.calib_samples:
        notes.append(("info", f"Calibrated on {report.calib_samples_used} train images: the whole train split, "
                              f"fewer than the {spec.calib_samples} asked."))
    if choice is not None:
        tried = "; ".join(f"{t.layout} {t.ratio:.2f}× the float model's time, validation {t.val_accuracy:.1%}"
                          for t in choice.trials)
        options = f" The file asks onnxruntime to disable {', '.join(choice.disabled_optimizers)} (in its metadata)." \
            if choice.disabled_optimizers else ""
        notes.append(("info", f"INT8 layout {choice.reason}." + (f" Tried, measured interleaved with the float model "
                                                                f"({choice.trials[0].clock}): {tried}." if tried else "")
                      + options))
    mixed = report.mixed_precision if report is not None else None
    if mixed is not None:
        table = "; ".join(f"{row.name}: alone {row.alone_val_accuracy:.1%}, all but it {row.all_but_val_accuracy:.1%}"
                          for row in mixed.layers)
        notes.append(("info", f"Mixed precision within {mixed.max_drop:g} validation points: {mixed.reason}. Each "
                              f"layer's INT8 validation accuracy (measured in onnxruntime): {table}."))
    if mode.integer and report is not None and report.integer_ops is not None:
        integer = ", ".join(f"{op} × {n}" for op, n in report.integer_ops.items()) or "none"
        if report.runs_integer:
            notes.append(("success", f"Ran as integer arithmetic: the graph onnxruntime executes has integer compute "
                                     f"ops ({integer}) and no float Conv / MatMul / Gemm left."))
        elif choice is not None and choice.layout == "float-first" and not (mixed and mixed.float_layers):
            notes.append(("success", f"Integer arithmetic but for the first block, which the float-first layout keeps in "
                                  f"float on purpose: integer ops {integer}."))
        elif mixed is not None and mixed.float_layers:
            kept = ", ".join(mixed.float_layers) + (" and the first block (float-first layout)"
                                                    if choice is not None and choice.layout == "float-first" else "")
            notes.append(("info", f"Integer arithmetic but for {kept}, kept in float on purpose: integer ops "
                                  f"{integer}."))
        else:
            floating = ", ".join(f"{op} × {n}" for op, n in report.float_compute_ops.items())
            notes.append(("warning", f"Not all integer: float compute ops remain in the graph onnxruntime executes "
                                     f"({floating}); integer ops: {integer}. Those layers run in float, with quantize "
                                     "/ dequantize around them."))
    speed = None if text.within_noise(result.speedup_noise) else result.speedup_vs_baseline  # no slower to explain
    if speed is not None and speed < NOTICEABLY_SLOWER and mode.weight_bits == 16:
        notes.append(("info", f"FP16 ran {1 / speed:.2f}× slower than FP32 on this CPU (measured, not a glitch): x86 "
                              "CPUs have little native FP16 arithmetic, so onnxruntime converts between FP16 and FP32 "
                              "around most operations. FP16 halves the file here, not the CPU latency."))
    elif speed is not None and speed < NOTICEABLY_SLOWER and mode.integer:
        notes.append(("info", f"INT8 ran {1 / speed:.2f}× slower than FP32 here (measured): on a model this small the "
                              "quantize / dequantize at the edges and the int8 re-layout can cost more than the "
                              "integer arithmetic saves. Larger inputs and models gain more."))
    return notes


def weight_format(spec: QuantSpec, shown: Format) -> str | None:
    """What the live grid shows for `spec`'s mode, where it is not simply the chosen settings."""
    mode = spec.technique
    if mode.integer:
        return (f"{spec.mode} stores weights as symmetric int8, {shown.granularity} (the runtime's fast kernels need "
                f"that); the scheme setting applies to its activations.")
    if not mode.simulated:
        return (f"{spec.mode} is a float format with no affine grid: shown is what {shown.bits}-bit {shown.scheme} "
                "quantization would do to these weights.")
    return None


def bit_width(points: pd.DataFrame, simulated: QuantSpec) -> str:
    """The caption under the accuracy-against-bits chart (tables.bit_points)."""
    note = ""
    if (points["source"] == "simulated").any():
        note = (f"Simulated curves ({simulated.scheme}, {simulated.granularity}"
                f"{', activations too' if simulated.activations else ''}), amber: accuracy in torch with fake-quantized "
                "weights, open diamonds; QAT dashed. QAT trains for extra epochs, so on a briefly trained baseline it "
                "can beat the baseline itself: read it against the PTQ curve. ")
    return f"{note}Filled markers: real formats run in onnxruntime, measured. Each point is a stored result; none is " \
           "recomputed."
