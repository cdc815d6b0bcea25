"""One form per compression stage, returning its Spec, used by every page that needs the stage (a technique
page and the Pipeline); and the Sweep page's grid form. Choices, help, ranges and defaults come from the
registries and bounds of compression.catalog and the specs' own defaults, never from literals in a page.
Widget keys are `{key}_{field}`: a page's settings survive a visit to another page. Also the Search page's
form, and a recipe opened on the Pipeline page (its widgets filled from the recipe)."""

import json
import math
import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import streamlit as st

from compression.catalog import (ALPHA, BITS, CALIB_SAMPLES, CALIBRATIONS, EPOCH_CHOICES, GRANULARITIES, INT8_LAYOUTS, MAX_DROP,
                                 MODELS, PATIENCE, PRUNE_LAMBDA, PRUNE_METHODS, PRUNE_RATIO, PRUNE_STEPS, QAT_EPOCHS, QUANT_MODES,
                                 QUANT_SCHEMES, ROUND_TO_AUTO, ROUND_TO_CHOICES, STAGES, TEMPERATURE, WIDTH)
from compression.describe import STAGE_NAMES
from compression.errors import CompressionError
from compression.pareto import METRICS
from compression.recipe import DistillSpec, PruneSpec, QuantSpec, Recipe
from compression.search import MAX_TRIALS, PARAMS, SAMPLERS, Limits, SearchRequest
from compression.tasks import SearchSettings

PERSIST = {"persist_state": "session"}  # a page's settings survive a visit to another page
SAME_FAMILY = "teacher's family"
ROUND_TO_OFFERED = (*ROUND_TO_CHOICES, ROUND_TO_AUTO)  # the search keeps to fixed multiples: auto measures first
PRUNE_KD_LABEL = "Fine-tune on the baseline's outputs (KD)"
PRUNE_KD_HELP = (f"Fine-tuning after each cut learns from the unpruned baseline's softened outputs as well as the "
                 f"labels (the distillation loss at T {DistillSpec.temperature:g}, α {DistillSpec.alpha:g}). On by "
                 f"default: it needs long fine-tuning (on digits it hurt at 10 fixed epochs), and with the plateau "
                 f"stop it beat labels-only on the validation split at every patience tried.")


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
    finetune = right.select_slider("Fine-tune epochs per round (at most, with patience)", EPOCH_CHOICES,
                                   initial.finetune_epochs, key=f"{key}_finetune", disabled=disabled, **PERSIST)
    patience = _patience_input(right, f"{key}_ft_patience", initial.patience, disabled)
    kd = right.checkbox(PRUNE_KD_LABEL, initial.kd, key=f"{key}_kd", help=PRUNE_KD_HELP, disabled=disabled, **PERSIST)
    round_to = right.selectbox("Channel methods: round kept channels down to a multiple of", ROUND_TO_OFFERED,
                               index=ROUND_TO_OFFERED.index(initial.round_to), key=f"{key}_round_to",
                               format_func=_round_to_label, disabled=disabled or not technique.structured, **PERSIST,
                               help="onnxruntime's convolutions are fastest on multiples of the SIMD block "
                                    "(16 on AVX-512, 8 on AVX2). auto: per layer, the fastest count of at least "
                                    "the asked on this CPU's measured latency staircase (measured once per "
                                    "machine, a few seconds).")
    return PruneSpec(method, ratio, steps, finetune, lam if technique.uses_lambda else PruneSpec.lam,
                     round_to if technique.structured else 1, kd, int(patience))


def _patience_input(container: Any, key: str, initial: int, disabled: bool) -> int:
    """The patience of a training's plateau stop: epochs without a better validation loss before it stops."""
    return int(container.number_input(
        "Patience (epochs without a better validation loss; 0: train every epoch)", int(PATIENCE.low),
        int(PATIENCE.high), initial, key=key, disabled=disabled, **PERSIST,
        help="Training stops once the validation loss has not improved for this many epochs, or at the epochs "
             "above; the best epoch's weights are kept, and the result says where it stopped."))


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
    layout = left.selectbox("INT8 layout", tuple(INT8_LAYOUTS), index=tuple(INT8_LAYOUTS).index(initial.layout),
                            key=f"{key}_layout", disabled=disabled or not mode.uses_layout, **PERSIST,
                            help="How the int8-static file is shaped for onnxruntime's CPU kernels. " + " ".join(
                                f"{name}: {text}." for name, text in INT8_LAYOUTS.items()))
    max_drop = left.number_input("Mixed precision: at most this many validation points below float", MAX_DROP.low,
                                 MAX_DROP.high, value=initial.max_drop, step=MAX_DROP.step, placeholder="every layer INT8",
                                 key=f"{key}_max_drop", disabled=disabled or not mode.mixed_precision, **PERSIST,
                                 help="Measures each layer's INT8 sensitivity on the validation split and keeps the "
                                      "most sensitive layers in float until the drop fits; empty: every layer INT8.")
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
    qat_patience = _patience_input(right, f"{key}_qat_patience", _qat_patience(initial), disabled or not qat)
    settings = dict(scheme=scheme, granularity=granularity, calibration=calibration, calib_samples=int(samples),
                    qat_epochs=qat, activations=activations, layout=layout, qat_patience=qat_patience)
    return QuantChoice(QuantSpec(mode.name, bits if mode.simulated else QuantSpec.bits, **settings,
                                 max_drop=max_drop if mode.mixed_precision else None),
                       QuantSpec(QUANT_MODES.where(simulated=True)[0], bits, **settings))


def _qat_patience(spec: QuantSpec) -> int:
    """The QAT patience a form shows for `spec`: its own, or without QAT (where it is 0) the default."""
    return spec.qat_patience if spec.qat_epochs else QuantSpec.qat_patience


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
    epochs = right.select_slider("Student epochs (at most, with patience)", EPOCH_CHOICES[1:], initial.epochs,
                                 key=f"{key}_epochs", disabled=disabled, **PERSIST,
                                 help="The KD student and the label-only control train under the same rule: "
                                      "these epochs, or with patience at most these, each stopped on its own "
                                      "validation plateau.")
    patience = _patience_input(right, f"{key}_distill_patience", initial.patience, disabled)
    return DistillSpec(width if scalable else 1.0, temperature, alpha, epochs,
                       None if student == SAME_FAMILY else student, patience)


# ------------------------------------------------------------------------------------------- the sweep grid

SWEEP_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, PRUNE_RATIO.high)
SWEEP_TEMPERATURES = (1.0, 2.0, 4.0, 8.0, 16.0)
NO_QUANT = "none"
SIMULATED = QUANT_MODES.where(simulated=True)


@dataclass(frozen=True)
class GridChoice:
    """What the Sweep page's widgets describe: the grid in the CLI's JSON format, or, while the widgets leave
    it incomplete, what is missing in their own words."""

    document: dict[str, Any] | None
    missing: str | None


def grid_form(recipe: Recipe) -> GridChoice:
    """The grid's widgets over the sidebar's baseline `recipe`: prune methods × fractions, quantization formats ×
    bits (simulated ones), KD temperatures."""
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
        calibrated = [m for m in formats if m != NO_QUANT and QuantSpec(m).calibrates]
        samples = st.number_input("Calibration samples (train split)", int(CALIB_SAMPLES.low),
                                  int(CALIB_SAMPLES.high), QuantSpec.calib_samples, step=int(CALIB_SAMPLES.step),
                                  key="sweep_calib_samples", disabled=not calibrated, **PERSIST,
                                  help=f"Train images {', '.join(QUANT_MODES.where(activations='always'))} reads to "
                                       "choose activation ranges; a smaller train split is read whole.")
    with distill:
        st.markdown("**Distillation**")
        temperatures = st.multiselect("KD temperatures (none: no distillation)", SWEEP_TEMPERATURES,
                                      key="sweep_temperatures", **PERSIST)
        kd_epochs = st.number_input("Student epochs", EPOCH_CHOICES[1], EPOCH_CHOICES[-1], DistillSpec.epochs,
                                    key="sweep_kd_epochs", **PERSIST)
    if methods and not ratios:
        return GridChoice(None, "Choose at least one of the **Fractions removed**, or no pruning method.")
    if set(formats) & set(SIMULATED) and not bits:
        return GridChoice(None, "Choose at least one of the **Bits (fake only)**, or take fake out of the formats.")
    quants = [None if m == NO_QUANT else {"mode": m, **({"calib_samples": int(samples)} if m in calibrated else {})}
              for m in formats if m not in SIMULATED]
    quants += [{"mode": m, "bits": b} for m in formats if m in SIMULATED for b in bits]
    axes = {"prune.method": [*methods, *([None] if unpruned or not methods else [])], "quant": quants or [None],
            "distill.temperature": temperatures or [None]}
    if methods:
        axes["prune.ratio"] = ratios
    base = {"dataset": recipe.dataset, "model": recipe.model, "seed": recipe.seed, "epochs": recipe.epochs,
            "prune.finetune_epochs": finetune, "distill.epochs": kd_epochs}
    return GridChoice({"base": base, "grid": axes}, None)


# ------------------------------------------------------------------------------------------- the search

SAMPLER_NAMES = {"tpe": "TPE (multi-objective)", "nsga2": "NSGA-II"}
SPACE_EXAMPLE = '{"fixed": {"prune.method": "channel-l2"}, "ranges": {"prune.ratio": [0.3, 0.9]}}'


@dataclass(frozen=True)
class SearchChoice:
    """What the Search page's widgets describe: the search (None while they describe none that could run, with
    `error` saying why in one line), the trials to run at once, and the same search as a command line."""

    search: SearchSettings | None
    error: str | None
    workers: int
    command: str = ""


def search_form(recipe: Recipe) -> SearchChoice:
    """The search's widgets over the sidebar's baseline `recipe`: the costs minimised beside accuracy, trials,
    sampler, constraints (empty: none), the stages searched and the space narrowed by JSON, the study's name and
    the worker count — the `search` command's choices."""
    goals, limits, space = st.columns(3)
    with goals:
        st.markdown("**Objectives**")
        costs = st.multiselect("Costs to minimise (accuracy is always maximised)", METRICS, default=["size"],
                               key="search_costs", **PERSIST,
                               help="size: ONNX file bytes; latency: p50 normalised to the baseline's; flops: per "
                                    "sample. The first is the chart's axis.")
        trials = st.number_input("Trials", 1, MAX_TRIALS, SearchRequest.trials, key="search_trials", **PERSIST,
                                 help="Finished trials the study should hold: a resumed study runs only the rest.")
        sampler = st.segmented_control("Sampler", SAMPLERS, default=SearchRequest.sampler, required=True,
                                       key="search_sampler", format_func=SAMPLER_NAMES.get, **PERSIST)
    with limits:
        st.markdown("**Constraints** (empty: none)")
        max_drop = st.number_input("At most this many validation accuracy points below the baseline", 0.0, 100.0,
                                   value=None, placeholder="no limit", key="search_max_drop", **PERSIST)
        max_kb = st.number_input("ONNX file at most (KB)", 0.0, value=None, placeholder="no limit",
                                 key="search_max_kb", **PERSIST)
        max_ms = st.number_input("Latency p50 at most (ms, normalised to the baseline's)", 0.0, value=None,
                                 placeholder="no limit", key="search_max_ms", **PERSIST)
    with space:
        st.markdown("**Space**")
        stages = st.multiselect("Stages it may use (any subset, in any order)", STAGES, default=list(STAGES),
                                key="search_stages", format_func=STAGE_NAMES.get, **PERSIST)
        with st.expander("Narrow the space (JSON)"):
            narrowing = st.text_area("Fixed fields and ranges", key="search_space", placeholder=SPACE_EXAMPLE,
                                     **PERSIST,
                                     help='{"fixed": {field: value}, "ranges": {field: [choices] or [low, high]}} '
                                          f"over the fields order, {', '.join(p.path for p in PARAMS)}")
    name, count = st.columns(2)
    study = name.text_input("Study name (empty: the default; the same name resumes it)", key="search_study",
                            **PERSIST).strip() or None
    cpus = os.cpu_count() or 1
    workers = int(count.number_input("Trials at once", 1, cpus, cpus, key="search_workers", **PERSIST,
                                     help="trials computed at the same time, as jobs of the executor's workers"))
    if not costs:
        return SearchChoice(None, "Choose at least one of the **Costs to minimise** beside accuracy.", workers)
    if not stages:
        return SearchChoice(None, "Choose at least one of the **Stages** the search may use.", workers)
    try:
        search = SearchSettings(recipe, ("accuracy", *costs), int(trials), Limits(max_drop, max_kb, max_ms), sampler,
                                study, _space_document(stages, narrowing), recipe.seed)
        search.request().validate()
    except CompressionError as exc:
        return SearchChoice(None, str(exc), workers)
    return SearchChoice(search, None, workers, search_command(search, workers))


def _space_document(stages: list[str], narrowing: str) -> str:
    """The space's JSON: the `stages` chosen, then the fixed fields and ranges of the `narrowing` JSON text."""
    try:
        narrowed = json.loads(narrowing) if narrowing.strip() else {}
    except json.JSONDecodeError as exc:
        raise CompressionError(f"search space is not valid JSON: {exc}") from None
    if not isinstance(narrowed, dict):
        raise CompressionError('the narrowing is an object {"fixed": {...}, "ranges": {...}}')
    if "stages" in narrowed:
        raise CompressionError("choose the stages with **Stages it may use**, not in the JSON: it narrows the "
                               "fixed fields and ranges")
    return json.dumps({"stages": [s for s in STAGES if s in stages], **narrowed})


def search_command(search: SearchSettings, workers: int) -> str:
    """The `python -m compression search` command of the same search (defaults left out)."""
    base = search.base
    args = ["python", "-m", "compression", "search", "--dataset", base.dataset, "--model", base.model,
            "--epochs", str(base.epochs), "--seed", str(base.seed)]
    if base.pretrained:
        args.append("--pretrained")
    for flag in ("threads", "batch", "provider", "runtime"):
        if getattr(base, flag) != getattr(Recipe, flag):
            args += [f"--{flag}", str(getattr(base, flag))]
    args += ["--objectives", ",".join(search.objectives), "--trials", str(search.trials), "--sampler", search.sampler]
    for name, value in asdict(search.limits).items():
        if value is not None:
            args += [f"--{name.replace('_', '-')}", str(value)]
    if search.study is not None:
        args += ["--study", search.study]
    if json.loads(search.space) != {"stages": list(STAGES)}:
        args += ["--space", search.space]
    return shlex.join([*args, "--workers", str(workers)])


# ------------------------------------------------------------------------- a recipe opened on the Pipeline

PIPELINE_PAGE = "app_pages/pipeline.py"


def pipeline_state(recipe: Recipe, key: str = "pipe") -> dict[str, Any]:
    """The Pipeline page's widget values (session_state keys `{key}_…`, as its stage forms and its order box
    name them) that describe `recipe`'s stages in its order; a one-line CompressionError for a setting those
    widgets do not offer (e.g. 7 fine-tune epochs: the slider has 5 and 10), so that the page never shows
    another recipe than the one asked for."""
    if not recipe.stages:
        raise CompressionError("the baseline has no stages to open on the Pipeline page")
    state: dict[str, Any] = {f"{key}_{stage}": stage in recipe.stages for stage in STAGES}
    if (prune := recipe.prune) is not None:
        if prune.lam != PruneSpec.lam and not prune.technique.uses_lambda:
            raise CompressionError(f"the Pipeline page sets λ for the activation method only, not for {prune.method}")
        state |= {f"{key}_method": prune.method, f"{key}_ratio": prune.ratio, f"{key}_lam": prune.lam,
                  f"{key}_steps": _offered(prune.steps, range(int(PRUNE_STEPS.low), int(PRUNE_STEPS.high) + 1),
                                           "prune / fine-tune rounds"),
                  f"{key}_finetune": _offered(prune.finetune_epochs, EPOCH_CHOICES, "fine-tune epochs"),
                  f"{key}_ft_patience": prune.patience, f"{key}_kd": prune.kd,
                  f"{key}_round_to": _offered(prune.round_to, ROUND_TO_OFFERED, "channel rounding", _round_to_label)}
    if (quant := recipe.quant) is not None:
        state |= {f"{key}_mode": quant.mode, f"{key}_bits": quant.bits, f"{key}_scheme": quant.scheme,
                  f"{key}_granularity": quant.granularity, f"{key}_activations": quant.activations,
                  f"{key}_calibration": quant.calibration,
                  f"{key}_calib_samples": _offered(quant.calib_samples, range(int(CALIB_SAMPLES.low),
                                                                              int(CALIB_SAMPLES.high) + 1),
                                                   "calibration samples"),
                  f"{key}_qat_epochs": _offered(quant.qat_epochs, range(int(QAT_EPOCHS.low), int(QAT_EPOCHS.high) + 1),
                                                "QAT epochs"), f"{key}_max_drop": quant.max_drop,
                  f"{key}_qat_patience": _qat_patience(quant)}
    if (distill := recipe.distill) is not None:
        state |= {f"{key}_temperature": distill.temperature, f"{key}_alpha": distill.alpha,
                  f"{key}_student": _offered(distill.student or SAME_FAMILY, (SAME_FAMILY, *MODELS.names),
                                             "student models"),
                  f"{key}_width": _offered(distill.width, widths(), "student widths"),
                  f"{key}_epochs": _offered(distill.epochs, EPOCH_CHOICES[1:], "student epochs"),
                  f"{key}_distill_patience": distill.patience}
    state[f"{key}_order_{'-'.join(s for s in STAGES if s in recipe.stages)}"] = recipe.stages
    return state


def _round_to_label(value: int) -> str:
    return "auto" if value == ROUND_TO_AUTO else str(value)


def _offered(value: Any, options: Sequence[Any], what: str, label: Callable[[Any], str] | None = None) -> Any:
    """The option of a Pipeline widget equal to `value` (floats within rounding), or a one-line error (options
    shown by `label`, if given)."""
    if isinstance(options, range) and value in options:
        return value
    for option in options:
        if option == value or (isinstance(value, float) and math.isclose(option, value)):
            return option

    def word(v: Any) -> str:
        return label(v) if label else f"{v:g}" if isinstance(v, float) else str(v)
    shown = f"{options[0]} … {options[-1]}" if isinstance(options, range) else ", ".join(map(word, options))
    raise CompressionError(f"the Pipeline page offers {what} {shown}, not {word(value)}")


def open_on_pipeline_button(recipe: Recipe, key: str) -> None:
    """A button that opens `recipe` on the Pipeline page (its widgets filled with the recipe's stages), or, for
    a recipe those widgets cannot show, the button disabled and the reason beneath."""
    if st.session_state.pop(_OPENING, False):  # the click's run: its callback set the widgets
        st.switch_page(PIPELINE_PAGE)
    try:
        state = pipeline_state(recipe)
    except CompressionError as exc:
        st.button("Open on the Pipeline page", key=key, icon=":material/linear_scale:", disabled=True)
        st.caption(f"It cannot open there: {exc}. Its result is stored: the Trade-offs page shows it.")
        return
    st.button("Open on the Pipeline page", key=key, icon=":material/linear_scale:", on_click=_fill_pipeline,
              args=(state,))


SIDEBAR_KEYS = ("dataset_choice", "imagefolder_path", "model", "seed", "epochs")  # ui/workspace.py's widgets
_OPENING = "_opening_pipeline"  # session state: set by the click's callback, the switch to make in its run


def _fill_pipeline(state: dict[str, Any]) -> None:
    """The click's callback, run before any widget of the run exists (the only time their values may be set):
    the Pipeline page's widgets set, the sidebar's set to what they are. A run that st.switch_page starts gets no
    widget values from the browser, and Streamlit drops every unpersisted widget's value on a page change: the
    sidebar would fall back to its defaults (20 epochs) and the Pipeline page build on another baseline. Values
    set through session_state are kept. The switch itself is made in the run (a callback's cannot find the
    pages under AppTest: st.navigation has not run yet)."""
    for name in SIDEBAR_KEYS:
        if name in st.session_state:
            st.session_state[name] = st.session_state[name]
    st.session_state.update(state)
    st.session_state[_OPENING] = True
