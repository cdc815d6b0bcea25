"""One form per compression stage, returning its Spec, used by every page that needs the stage (a technique
page and the Pipeline); and the Sweep page's grid form. Choices, help, ranges and defaults come from the
registries and bounds of compression.catalog and the specs' own defaults, never from literals in a page.
Widget keys are `{key}_{field}`: a page's settings survive a visit to another page."""

import os
from dataclasses import dataclass
from typing import Any

import streamlit as st

from compression.catalog import (ALPHA, BITS, CALIB_SAMPLES, CALIBRATIONS, GRANULARITIES, MODELS, PRUNE_LAMBDA,
                                 PRUNE_METHODS, PRUNE_RATIO, PRUNE_STEPS, QAT_EPOCHS, QUANT_MODES, QUANT_SCHEMES,
                                 ROUND_TO_CHOICES, TEMPERATURE, WIDTH)
from compression.recipe import DistillSpec, PruneSpec, QuantSpec, Recipe

PERSIST = {"persist_state": "session"}  # a page's settings survive a visit to another page
EPOCH_CHOICES = (0, 1, 2, 3, 5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560)  # the lengths an epochs slider offers:
# single steps where a few epochs matter, then doublings up to the longest fine-tuning cross-validated
SAME_FAMILY = "teacher's family"
PRUNE_KD_LABEL = "Fine-tune on the baseline's outputs (KD)"
PRUNE_KD_HELP = (f"Fine-tuning after each cut learns from the unpruned baseline's softened outputs as well as the "
                 f"labels (the distillation loss at T {DistillSpec.temperature:g}, α {DistillSpec.alpha:g}). It "
                 f"needs long fine-tuning: on digits it hurt at 10 epochs, and the distilled, pruned student kept "
                 f"gaining up to 2560 epochs, no further at 5120 (cross-validated).")


def _columns(count: int) -> list:
    """`count` side-by-side columns, or the current container (three times) for one."""
    return st.columns(count) if count > 1 else [st] * 3


def prune_form(key: str, initial: PruneSpec, *, disabled: bool = False, columns: int = 2) -> PruneSpec:
    """The pruning stage's widgets, starting from `initial`; the PruneSpec they describe (settings the method
    does not use at their defaults)."""
    left, right, *_ = _columns(columns)
    method = left.selectbox("Method", PRUNE_METHODS.names, index=PRUNE_METHODS.index(initial.method),
                            key=f"{key}_method", disabled=disabled, format_func=lambda m: PRUNE_METHODS[m].label,
                            **PERSIST)
    technique = PRUNE_METHODS[method]
    ratio = left.slider("Fraction removed", PRUNE_RATIO.low, PRUNE_RATIO.high, initial.ratio, PRUNE_RATIO.step,
                        key=f"{key}_ratio", disabled=disabled, **PERSIST)
    lam = left.slider("λ (activation only): weight magnitude vs activation", PRUNE_LAMBDA.low, PRUNE_LAMBDA.high,
                      initial.lam, PRUNE_LAMBDA.step, key=f"{key}_lam", disabled=disabled or not technique.uses_lambda,
                      **PERSIST)
    steps = right.slider("Prune / fine-tune rounds", int(PRUNE_STEPS.low), int(PRUNE_STEPS.high), initial.steps,
                         key=f"{key}_steps", disabled=disabled, **PERSIST,
                         help="Iterative pruning: the removed fraction rises linearly over the rounds.")
    finetune = right.select_slider("Fine-tune epochs per round", EPOCH_CHOICES, initial.finetune_epochs,
                                   key=f"{key}_finetune", disabled=disabled, **PERSIST)
    kd = right.checkbox(PRUNE_KD_LABEL, initial.kd, key=f"{key}_kd", help=PRUNE_KD_HELP, disabled=disabled, **PERSIST)
    round_to = right.selectbox("Channel methods: round kept channels down to a multiple of", ROUND_TO_CHOICES,
                               index=ROUND_TO_CHOICES.index(initial.round_to), key=f"{key}_round_to",
                               disabled=disabled or not technique.structured, **PERSIST,
                               help="onnxruntime's convolutions are fastest on multiples of the SIMD block "
                                    "(16 on AVX-512, 8 on AVX2).")
    return PruneSpec(method, ratio, steps, finetune, lam if technique.uses_lambda else PruneSpec.lam,
                     round_to if technique.structured else 1, kd)


@dataclass(frozen=True)
class QuantChoice:
    """What the quantization form describes: the QuantSpec to run (settings its mode does not use normalised
    away), and the same bit width, scheme, granularity and calibration as simulated k-bit quantization — the
    grid a float format is shown against, and the settings of the accuracy-against-bits curve."""

    spec: QuantSpec
    simulated: QuantSpec


def quant_form(key: str, initial: QuantSpec, *, disabled: bool = False, columns: int = 3,
               what_if: bool = False) -> QuantChoice:
    """The quantization stage's widgets, starting from `initial`. With `what_if`, the bit width, scheme and
    granularity stay open for the float formats (fp32, fp16), whose weights the page draws on the grid they
    would take; otherwise a setting the chosen mode does not use is disabled."""
    left, middle, right = _columns(columns)
    mode = QUANT_MODES[left.selectbox("Mode", QUANT_MODES.names, index=QUANT_MODES.index(initial.mode),
                                      key=f"{key}_mode", disabled=disabled, format_func=lambda m: QUANT_MODES[m].label,
                                      **PERSIST)]
    shows_grid = what_if and not (mode.simulated or mode.integer)  # a float format drawn as a what-if
    bits = left.slider("Bit width", int(BITS.low), int(BITS.high), initial.bits, key=f"{key}_bits", **PERSIST,
                       disabled=disabled or not (mode.simulated or shows_grid),
                       help="Simulated quantization runs at any width; INT8 modes are 8 bits by definition.")
    scheme = middle.selectbox("Scheme", QUANT_SCHEMES, index=QUANT_SCHEMES.index(initial.scheme), key=f"{key}_scheme",
                              disabled=disabled or not (mode.uses_scheme or shows_grid), **PERSIST,
                              help="asymmetric: [min, max] onto 0 … 2^b − 1 with a zero point; symmetric: "
                                   "[−max|x|, max|x|] onto ±(2^(b−1) − 1), zero point 0. For int8-static it "
                                   "applies to the activations.")
    granularity = middle.selectbox("Granularity", GRANULARITIES, index=GRANULARITIES.index(initial.granularity),
                                   key=f"{key}_granularity", disabled=disabled or not (mode.uses_granularity
                                                                                      or shows_grid), **PERSIST,
                                   help="per-channel: one scale per output channel; per-tensor: one per layer.")
    activations = middle.checkbox("Quantize activations too (simulated only)", initial.activations,
                                  key=f"{key}_activations", disabled=disabled or mode.activations != "optional",
                                  **PERSIST)
    calibrates = QuantSpec(mode.name, activations=activations).calibrates
    calibration = right.selectbox("Calibration (activation ranges)", CALIBRATIONS,
                                  index=CALIBRATIONS.index(initial.calibration), key=f"{key}_calibration",
                                  disabled=disabled or not calibrates, **PERSIST,
                                  help="minmax keeps every observed value; percentile clips the top 0.01 %; "
                                       "entropy picks the clip with the least KL divergence.")
    samples = right.number_input("Calibration samples (train split)", int(CALIB_SAMPLES.low), int(CALIB_SAMPLES.high),
                                 initial.calib_samples, step=int(CALIB_SAMPLES.step), key=f"{key}_calib_samples",
                                 disabled=disabled or not calibrates, **PERSIST)
    qat = right.slider("QAT epochs (0 = post-training only)", int(QAT_EPOCHS.low), int(QAT_EPOCHS.high),
                       initial.qat_epochs, key=f"{key}_qat_epochs", disabled=disabled, **PERSIST,
                       help=f"Fine-tune with fake quantization and a straight-through gradient before export; "
                            f"applies to {' and '.join(QUANT_MODES.where(supports_qat=True))}.")
    settings = dict(scheme=scheme, granularity=granularity, calibration=calibration, calib_samples=int(samples),
                    qat_epochs=qat, activations=activations)
    return QuantChoice(QuantSpec(mode.name, bits if mode.simulated else QuantSpec.bits, **settings),
                       QuantSpec(QUANT_MODES.where(simulated=True)[0], bits, **settings))


def widths() -> list[float]:
    """The student widths a slider offers: WIDTH.low … WIDTH.high in WIDTH.step."""
    count = round((WIDTH.high - WIDTH.low) / WIDTH.step)
    return [WIDTH.low + i * WIDTH.step for i in range(count + 1)]


def distill_form(key: str, initial: DistillSpec, teacher: str, *, disabled: bool = False,
                 columns: int = 2) -> DistillSpec:
    """The distillation stage's widgets for a `teacher` model, starting from `initial`; the DistillSpec they
    describe (width 1 for a student family without a width multiplier)."""
    left, right, *_ = _columns(columns)
    temperature = left.slider("Temperature T", TEMPERATURE.low, TEMPERATURE.high, initial.temperature,
                              TEMPERATURE.step, key=f"{key}_temperature", disabled=disabled, **PERSIST,
                              help="Divides the teacher's logits before the softmax: higher T spreads probability "
                                   "onto the classes the teacher finds similar (the 'dark knowledge').")
    alpha = left.slider("α: weight of the teacher's soft targets", ALPHA.low, ALPHA.high, initial.alpha, ALPHA.step,
                        key=f"{key}_alpha", disabled=disabled, help="1 − α goes to the ordinary label loss.",
                        **PERSIST)
    choices = (SAME_FAMILY, *MODELS.names)
    student = right.selectbox("Student model", choices, index=choices.index(initial.student or SAME_FAMILY),
                              key=f"{key}_student", disabled=disabled, **PERSIST,
                              help="The teacher's family at the chosen width, or another model (width 1 unless "
                                   "its family takes a width multiplier).")
    scalable = MODELS[teacher if student == SAME_FAMILY else student].scalable
    width = right.select_slider("Student width (× the teacher's channels)", widths(), initial.width,
                                key=f"{key}_width", disabled=disabled or not scalable, format_func=lambda w: f"{w:g}",
                                **PERSIST)
    epochs = right.select_slider("Student epochs", EPOCH_CHOICES[1:], initial.epochs, key=f"{key}_epochs",
                                 disabled=disabled, **PERSIST,
                                 help=f"The KD student and the label-only control train for the same epochs. "
                                      f"{DistillSpec.epochs} by default: on digits, cross-validation put the KD "
                                      f"student ahead of the control at 40, 80 and 160 epochs, most accurate at 80.")
    return DistillSpec(width if scalable else 1.0, temperature, alpha, epochs,
                       None if student == SAME_FAMILY else student)


# ------------------------------------------------------------------------------------------- the sweep grid

SWEEP_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, PRUNE_RATIO.high)
SWEEP_TEMPERATURES = (1.0, 2.0, 4.0, 8.0, 16.0)
NO_QUANT = "none"
SIMULATED = QUANT_MODES.where(simulated=True)


@dataclass(frozen=True)
class GridChoice:
    """What the Sweep page's widgets describe: the grid in the CLI's JSON format, or, while the widgets leave
    it incomplete, what is missing in their own words; and the worker processes to run it on."""

    document: dict[str, Any] | None
    missing: str | None
    workers: int


def grid_form(recipe: Recipe) -> GridChoice:
    """The grid's widgets over the sidebar's baseline `recipe`: prune methods × fractions, quantization formats ×
    bits (simulated ones), KD temperatures; and the worker count."""
    prune, quant, distill = st.columns(3)
    with prune:
        st.markdown("**Pruning**")
        methods = st.multiselect("Methods", PRUNE_METHODS.names, default=["channel-l2"], key="sweep_methods",
                                 **PERSIST)
        ratios = st.multiselect("Fractions removed", SWEEP_RATIOS, default=[0.3, 0.5, 0.7], key="sweep_ratios",
                                **PERSIST)
        finetune = st.number_input("Fine-tune epochs", EPOCH_CHOICES[0], EPOCH_CHOICES[-1], PruneSpec.finetune_epochs,
                                   key="sweep_finetune", **PERSIST)
        unpruned = st.checkbox("Also without pruning", value=True, key="sweep_unpruned", **PERSIST)
    with quant:
        st.markdown("**Quantization**")
        formats = st.multiselect("Formats", (NO_QUANT, *QUANT_MODES.names), default=[NO_QUANT, "int8-static"],
                                 key="sweep_quant", **PERSIST,
                                 help="int8-static / int8-dynamic / fp16 run in onnxruntime; fake simulates k bits "
                                      "in torch (accuracy simulated, latency not timed)")
        bits = st.multiselect("Bits (fake only)", range(int(BITS.low), 9), default=[4], key="sweep_bits", **PERSIST,
                              disabled=not set(formats) & set(SIMULATED))
    with distill:
        st.markdown("**Distillation**")
        temperatures = st.multiselect("KD temperatures (none: no distillation)", SWEEP_TEMPERATURES,
                                      key="sweep_temperatures", **PERSIST)
        kd_epochs = st.number_input("Student epochs", EPOCH_CHOICES[1], EPOCH_CHOICES[-1], DistillSpec.epochs,
                                    key="sweep_kd_epochs", **PERSIST)
    workers = _worker_count()
    if methods and not ratios:
        return GridChoice(None, "Choose at least one of the **Fractions removed**, or no pruning method.", workers)
    if set(formats) & set(SIMULATED) and not bits:
        return GridChoice(None, "Choose at least one of the **Bits (fake only)**, or take fake out of the formats.",
                          workers)
    quants = [None if m == NO_QUANT else {"mode": m} for m in formats if m not in SIMULATED]
    quants += [{"mode": m, "bits": b} for m in formats if m in SIMULATED for b in bits]
    axes = {"prune.method": [*methods, *([None] if unpruned or not methods else [])], "quant": quants or [None],
            "distill.temperature": temperatures or [None]}
    if methods:
        axes["prune.ratio"] = ratios
    base = {"dataset": recipe.dataset, "model": recipe.model, "seed": recipe.seed, "epochs": recipe.epochs,
            "prune.finetune_epochs": finetune, "distill.epochs": kd_epochs}
    return GridChoice({"base": base, "grid": axes}, None, workers)


def _worker_count() -> int:
    """The worker processes chosen for the sweep: a slider up to the CPU count, or one on a one-CPU machine."""
    cpus = os.cpu_count() or 1
    if cpus == 1:
        st.caption("One worker process: this machine has one CPU.")
        return 1
    return st.slider("Worker processes", 1, cpus, cpus, key="sweep_workers", **PERSIST,
                     help="Model work runs in parallel; latency is timed one model at a time under the benchmark "
                          "lock.")
