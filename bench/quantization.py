"""Quantization targets on digits / cnn, every number measured where a runtime can execute the format
(accuracy in onnxruntime on the test split, latency timed interleaved with the baseline in the same
process, batch 32, 1 thread) and labelled simulated where it cannot (k-bit fake quantization in torch):

- int8-static per-channel: accuracy drop <= 0.5 point, ONNX size <= 0.27x, latency <= 0.5x, on digits and
  on the same architecture built for 3x32x32 inputs (random weights: latency only);
- accuracy vs bit width (16, 8, 6, 4, 3, 2) for post-training quantization and for QAT: at 4 bits QAT
  recovers at least half of what PTQ loses;
- MinMax vs Entropy vs Percentile calibration, per-tensor vs per-channel, at 8 bits;
- int8-dynamic and FP16 for comparison.
"""

import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from common import markdown_table, verdict, write

from compression import pipeline, quantize
from compression.catalog import CALIBRATIONS, GRANULARITIES
from compression.data import Split, Splits
from compression.export import export_named, save_deployable
from compression.measure import file_sizes, time_interleaved
from compression.models import build_model
from compression.recipe import QuantSpec, Recipe
from compression.result import Result
from compression.store import Store
from compression.train import seed_everything

BASE = Recipe(dataset="digits", model="cnn")
QAT_EPOCHS = 5
CIFAR_SHAPE = (3, 32, 32)
ONE_IMAGE = 100 / 360 + 1e-3  # points: one image of the digits test split; a smaller loss leaves nothing to recover
FLOAT32_SLACK = 1e-3  # points: accuracies are float32 means, so equal image counts can differ by ~1e-6


def measure(store: Store, spec: QuantSpec) -> dict:
    """Run one quantization of the digits baseline and keep the figures the tables need."""
    print(spec, file=sys.stderr, flush=True)
    result = pipeline.run(Recipe(dataset=BASE.dataset, model=BASE.model, quant=spec), store)
    return row(result)


def row(result: Result) -> dict:
    spec = result.recipe["quant"]
    report = asdict(result.quant) if result.quant else {}
    return {
        **{k: spec[k] for k in ("mode", "bits", "scheme", "granularity", "calibration", "qat_epochs", "activations")},
        "accuracy": result.accuracy, "accuracy_source": result.accuracy_source,
        "accuracy_drop_points": 100 * (result.baseline_accuracy - result.accuracy),
        "size_bytes": result.size_bytes, "size_source": result.size_source,
        "size_ratio": result.size_ratio_vs_baseline, "latency_measured": result.latency_measured,
        "latency_ratio": 1 / result.speedup_vs_baseline if result.latency_measured else None,
        "latency_p50_ms": result.latency_ms.p50 if result.latency_measured else None,
        "runs_integer": report.get("runs_integer"), "integer_ops": report.get("integer_ops"),
        "float_compute_ops": report.get("float_compute_ops"), "recipe_hash": result.recipe_hash,
        "layout": (report.get("layout_choice") or {}).get("layout"),
    }


def cifar_shaped_latency() -> dict:
    """int8-static per-channel vs float on the cnn built for 3x32x32 (random weights, random calibration
    images): file sizes and the latency ratio, timed interleaved."""
    seed_everything(0)
    model = build_model("cnn", CIFAR_SHAPE, 10).eval()
    images = Split(torch.randn(256, *CIFAR_SHAPE), torch.randint(0, 10, (256,)))
    splits = Splits("random-3x32x32", images, images, images, CIFAR_SHAPE, 10, [str(i) for i in range(10)],
                    [0.0] * 3, [1.0] * 3)
    with tempfile.TemporaryDirectory() as tmp:
        named = export_named(model, CIFAR_SHAPE, Path(tmp) / "named.onnx")
        float_onnx = save_deployable(named, Path(tmp) / "float.onnx")
        int8 = quantize.convert(model, named, QuantSpec("int8-static"), splits, Path(tmp))
        batch32 = time_interleaved([int8.onnx, float_onnx], CIFAR_SHAPE, 32, 1)
        batch64 = time_interleaved([int8.onnx, float_onnx], CIFAR_SHAPE, 64, 1)
        size_ratio = file_sizes(int8.onnx)[0] / file_sizes(float_onnx)[0]
    return {"input_shape": list(CIFAR_SHAPE), "size_ratio": size_ratio,
            "latency_ratio_batch32": batch32[0].p50 / batch32[1].p50,
            "latency_ratio_batch64": batch64[0].p50 / batch64[1].p50,
            "int8_p50_ms_batch32": batch32[0].p50, "float_p50_ms_batch32": batch32[1].p50,
            "runs_integer": int8.report.runs_integer, "integer_ops": int8.report.integer_ops}


def qat_recovery(ptq: list[dict], qat: list[dict], bits: int) -> tuple[float, float]:
    """Points PTQ loses at `bits`, and how many of them QAT wins back."""
    lost = next(r for r in ptq if r["bits"] == bits)["accuracy_drop_points"]
    return lost, lost - next(r for r in qat if r["bits"] == bits)["accuracy_drop_points"]


def fmt(r: dict) -> list:
    latency = f"{r['latency_ratio']:.3f}" if r["latency_measured"] else "not measured (simulated)"
    return [r["mode"], r["bits"], r["scheme"], r["granularity"], r["calibration"], r["qat_epochs"],
            f"{r['accuracy']:.2%} ({r['accuracy_source']})", f"{r['accuracy_drop_points']:+.2f}",
            f"{r['size_ratio']:.3f} ({r['size_source']})", latency]


HEADER = ["mode", "bits", "scheme", "granularity", "calibration", "QAT epochs", "test accuracy", "drop (pts)",
          "size ×", "latency ×"]


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        store = Store(Path(home))
        base = pipeline.run(BASE, store)
        static = measure(store, QuantSpec("int8-static"))
        side_by_side = [measure(store, QuantSpec("int8-static", calibration=c, granularity=g))
                        for g in GRANULARITIES for c in CALIBRATIONS]
        others = [measure(store, QuantSpec("int8-dynamic")), measure(store, QuantSpec("fp16"))]
        ptq = [measure(store, QuantSpec("fake", bits=b, activations=True)) for b in quantize.PTQ_BITS]
        qat = [measure(store, QuantSpec("fake", bits=b, activations=True, qat_epochs=QAT_EPOCHS))
               for b in quantize.PTQ_BITS]
    cifar = cifar_shaped_latency()
    recovery = {bits: qat_recovery(ptq, qat, bits) for bits in (4, 2)}
    checks = [  # (target, measured, passed)
        ("int8-static per-channel: drop ≤ 0.5 pt", f"{static['accuracy_drop_points']:+.2f} pts",
         static["accuracy_drop_points"] <= 0.5),
        ("int8-static per-channel: ONNX size ≤ 0.27×", f"{static['size_ratio']:.3f}×", static["size_ratio"] <= 0.27),
        ("int8-static per-channel: latency ≤ 0.5× (digits 1x8x8)", f"{static['latency_ratio']:.3f}×",
         static["latency_ratio"] <= 0.5),
        ("int8-static per-channel: latency ≤ 0.5× (3x32x32)", f"{cifar['latency_ratio_batch32']:.3f}×",
         cifar["latency_ratio_batch32"] <= 0.5),
        ("int8-static: convolutions and matmuls run as integer ops (but a block its layout keeps in float)",
         f"{static['integer_ops']}, float {static['float_compute_ops']} ({static['layout']} layout)",
         bool(static["runs_integer"]) or (static["layout"] == "float-first" and static["float_compute_ops"] == {"Conv": 1})),
        *[(f"{bits} bits: QAT recovers ≥ half of the PTQ loss", f"PTQ loses {lost:.2f} pts, QAT recovers "
           f"{recovered:.2f}", lost > ONE_IMAGE and recovered >= lost / 2 - FLOAT32_SLACK)
          for bits, (lost, recovered) in recovery.items()],
    ]
    payload = {
        "dataset": BASE.dataset, "model": BASE.model, "baseline_accuracy": base.accuracy,
        "baseline_size_bytes": base.size_bytes, "baseline_latency_p50_ms": base.latency_ms.p50,
        "int8_static": static, "calibration_granularity": side_by_side, "others": others,
        "bits_curve": {"ptq": ptq, "qat": qat, "qat_epochs": QAT_EPOCHS, "recovery_points": recovery}, "cifar_shaped": cifar,
        "targets": {label: passed for label, _, passed in checks}, "provenance": asdict(base.provenance),
    }
    markdown = (
        f"### Quantization: digits / cnn (baseline {base.accuracy:.2%} test accuracy in onnxruntime)\n\n"
        "Sizes and latency are ratios to the baseline's float ONNX; latency is p50 at batch 32, 1 thread, timed "
        "interleaved with the baseline in the same process. k-bit (fake) rows are simulated in torch with weights "
        "and activations quantized; their size is the packed k-bit weight size (computed), and no runtime "
        "executes them, so they have no latency.\n\n"
        + markdown_table(["target", "measured", "result"],
                         [[label, measured, verdict(passed)] for label, measured, passed in checks])
        + f"\n3x32x32 cnn (random weights): int8 file {cifar['size_ratio']:.3f}× of float, latency "
          f"{cifar['latency_ratio_batch32']:.3f}× at batch 32 and {cifar['latency_ratio_batch64']:.3f}× at batch 64.\n"
        + "\n#### Calibration and granularity at 8 bits (int8-static), with int8-dynamic and FP16\n\n"
        + markdown_table(HEADER, [fmt(r) for r in side_by_side + others])
        + f"\n#### Accuracy vs bit width: post-training vs quantization-aware ({QAT_EPOCHS} epochs)\n\n"
        + markdown_table(HEADER, [fmt(r) for r in ptq + qat])
    )
    write("quantization", payload, markdown)


if __name__ == "__main__":
    main()
