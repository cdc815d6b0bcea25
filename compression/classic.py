"""Classic experiments rerun at the user's command, the published figures beside ours: Hinton, Vinyals & Dean
2015 (MNIST distillation) and the pruning and quantization stages of Han, Mao & Dally 2016 (Deep Compression,
LeNet-300-100). An experiment is a few recipes of the ordinary pipeline (trained, deployed, measured and stored
like any result); what this project does not deploy (a sparse layout, weight sharing, Huffman coding) is computed
from the deployed file and labelled so. A finished run is stored as JSON (kind `classic`), so it shows at once
the next time. Torch loads only when a run computes (`run`)."""

from __future__ import annotations

import heapq
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compression.catalog import SEEDS
from compression.errors import CompressionError
from compression.recipe import DistillSpec, PruneSpec, QuantSpec, Recipe, digest
from compression.result import Result, from_json
from compression.stats import Interval
from compression.store import Store

if TYPE_CHECKING:
    from compression.train import Progress, ProgressFn

KIND = "classic"  # the store's kind of a finished experiment
SETTINGS = ("classroom", "paper")
EPOCHS_SCALE = (0.01, 100.0)  # --epochs-scale: a multiplier of the setting's epochs (each at least 1)


@dataclass(frozen=True)
class Setting:
    """How long each part of an experiment trains (epochs by role), and what that setting is for."""

    name: str
    epochs: dict[str, int]
    note: str


@dataclass(frozen=True)
class Row:
    """One line of the ours-vs-published table. `source` says what our figure is (measured in onnxruntime,
    counted on the model, computed from measured figures, or computed for a layout not deployed); `interval` is
    the 95 % Wilson interval of our test accuracy in the row's unit; `ours_value` the number `ours` prints."""

    what: str
    published: str
    ours: str
    source: str
    interval: str = ""
    note: str = ""
    ours_value: float | None = None


@dataclass(frozen=True)
class Experiment:
    """A published result and how we rerun it: the paper, its claim, the recipes of a setting (roles → recipes
    of the pipeline), the rows and the computed why-lines from their results, and the training epochs each
    setting spends per training stage of the pipeline (train, distill, fine-tune: what the run's measured epoch
    times multiply to estimate another setting)."""

    name: str
    title: str
    citation: str
    link: str
    claim: str
    settings: tuple[Setting, ...]
    differences: tuple[str, ...]
    recipes: Callable[[dict[str, int], int], dict[str, Recipe]]
    rows: Callable[[dict[str, Result], Store], tuple[list[Row], list[str]]]
    stage_epochs: Callable[[dict[str, int]], dict[str, int]]

    def setting(self, name: str) -> Setting:
        found = next((s for s in self.settings if s.name == name), None)
        if found is None:
            raise CompressionError(f"unknown setting {name!r}: choose one of {', '.join(SETTINGS)}")
        return found


@dataclass(frozen=True)
class ClassicRequest:
    """Which experiment to run, in which setting, its epochs times `epochs_scale` (each at least 1), on `seed`."""

    experiment: str
    setting: str = "classroom"
    epochs_scale: float = 1.0
    seed: int = 0

    def validate(self) -> Experiment:
        """The experiment, after a one-line CompressionError for anything out of range."""
        if self.experiment not in EXPERIMENTS:
            raise CompressionError(f"unknown experiment {self.experiment!r}: choose one of {', '.join(EXPERIMENTS)}")
        found = EXPERIMENTS[self.experiment]
        found.setting(self.setting)
        low, high = EPOCHS_SCALE
        if not low <= self.epochs_scale <= high:
            raise CompressionError(f"--epochs-scale must be within {low:g} … {high:g}, got {self.epochs_scale}")
        if not SEEDS.low <= self.seed <= SEEDS.high:
            raise CompressionError(f"seed must be within {SEEDS.text()}, got {self.seed}")
        return found

    @property
    def epochs(self) -> dict[str, int]:
        """The epochs of each role as this request runs them."""
        setting = EXPERIMENTS[self.experiment].setting(self.setting)
        return {role: max(1, round(n * self.epochs_scale)) for role, n in setting.epochs.items()}

    def recipes(self) -> dict[str, Recipe]:
        """The pipeline's recipes of this run, by role."""
        return self.validate().recipes(self.epochs, self.seed)

    @property
    def key(self) -> str:
        """The store key of this run's result: the experiment, the setting it is labelled with, and its recipes."""
        return digest({"experiment": self.experiment, "setting": self.setting,
                        "recipes": {role: recipe.hash for role, recipe in self.recipes().items()}})


@dataclass
class ClassicResult:
    """A finished rerun: ours-vs-published rows, the why-lines computed from them, the recipes it measured (their
    store hashes), the epoch times it measured (seconds per epoch by training stage) and the estimated time of the
    paper setting from them (None where a stage was served from the store, so not timed)."""

    experiment: str
    setting: str
    epochs_scale: float
    seed: int
    epochs: dict[str, int]
    rows: list[Row]
    why: list[str]
    recipes: dict[str, str]
    test_images: int
    seconds: float
    epoch_seconds: dict[str, float]
    paper_seconds: float | None
    created_at: str
    dataset: str = "mnist"
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassicResult:
        return from_json(cls, data)


# --------------------------------------------------------------------------------------------- figures in words


def errors(accuracy: float, images: int) -> int:
    """Test errors of an accuracy measured on `images` images."""
    return images - round(accuracy * images)


def _interval(accuracy: float, images: int) -> Interval:
    from compression.stats import accuracy_interval

    return accuracy_interval(round(accuracy * images), images)


def error_interval(accuracy: float, images: int) -> str:
    """The 95 % Wilson interval of an accuracy, in test errors: '52 – 84 errors'."""
    ci = _interval(accuracy, images)
    return f"{errors(ci.high, images)} – {errors(ci.low, images)} errors"


def error_rate_interval(accuracy: float, images: int) -> str:
    """The same in % error: '1.45 – 1.97 %'."""
    ci = _interval(accuracy, images)
    return f"{(1 - ci.high) * 100:.2f} – {(1 - ci.low) * 100:.2f} %"


def _overlap(first: float, second: float, images: int) -> bool:
    a, b = _interval(first, images), _interval(second, images)
    return a.low <= b.high and b.low <= a.high


def _kb(size: float) -> str:
    return f"{size / 1000:,.1f} KB"


def _times(ratio: float) -> str:
    return f"{ratio:.1f}×"


# ------------------------------------------------------------------------------------------------- Hinton 2015

HINTON_T, HINTON_ALPHA = 20.0, 0.9  # the paper's temperature; most of the weight on the soft targets, as it advises


def _hinton_recipes(epochs: dict[str, int], seed: int) -> dict[str, Recipe]:
    teacher = Recipe(dataset="mnist", model="mlp-1200", seed=seed, epochs=epochs["teacher"])
    spec = DistillSpec(width=1.0, temperature=HINTON_T, alpha=HINTON_ALPHA, epochs=epochs["student"], student="mlp-800")
    return {"teacher": teacher, "students": replace(teacher, distill=spec)}


def _hinton_rows(results: dict[str, Result], store: Store) -> tuple[list[Row], list[str]]:
    teacher, students = results["teacher"], results["students"]
    report, n = students.distill, teacher.test_images
    big, small, kd = (errors(a, n) for a in (teacher.accuracy, report.control_accuracy, report.student_accuracy))
    saved, lead = small - kd, small - big
    share = f"{saved / lead:.0%}" if lead > 0 else "— (the big net is not ahead)"
    measured = "measured (onnxruntime)"
    rows = [
        Row("Big net (2×1200, dropout, jitter): test errors", "67", str(big), measured,
            error_interval(teacher.accuracy, n), f"{report.teacher_params:,} parameters", big),
        Row("Small net (2×800), labels only: test errors", "146", str(small), measured,
            error_interval(report.control_accuracy, n), "the label-only control: same init, batches and epochs", small),
        Row(f"Small net with KD (T = {HINTON_T:g}): test errors", "74", str(kd), measured,
            error_interval(report.student_accuracy, n), f"α = {HINTON_ALPHA:g} on the soft targets", kd),
        Row("Errors KD saved", "72", str(saved), "computed (from the measured errors)", "", "", saved),
        Row("Share of the big net's lead KD recovered", "91 %", share, "computed (from the measured errors)", "", "",
            saved / lead if lead > 0 else None),
    ]
    noise = ("the 95 % intervals of the KD student and the control overlap: on these test images the gain may be noise"
             if _overlap(report.student_accuracy, report.control_accuracy, n)
             else "their 95 % intervals do not overlap")
    why = [f"KD saved {saved} test errors of the small net's {small} (the paper: 72 of 146); {noise}.",
           f"Our big net makes {big} errors to the paper's 67, our small net {small} to its 146, both counted on the "
           f"{n:,} test images."]
    return rows, why


HINTON = Experiment(
    name="hinton",
    title="Distilling the knowledge in a neural network (MNIST)",
    citation="G. Hinton, O. Vinyals, J. Dean. Distilling the Knowledge in a Neural Network. NIPS Deep Learning "
             "Workshop, 2015 (arXiv:1503.02531), §3",
    link="https://arxiv.org/abs/1503.02531",
    claim="A big net (2 hidden layers of 1200 ReLU units, dropout, inputs jittered by up to 2 pixels) makes 67 test "
          "errors on MNIST; a small net (2 × 800, no regularisation) makes 146; the same small net trained to match "
          "the big net's soft targets at temperature 20 makes 74.",
    settings=(Setting("classroom", {"teacher": 10, "student": 5}, "a few epochs each: minutes, not hours"),
              Setting("paper", {"teacher": 60, "student": 40},
                      "long training (the paper gives no epoch counts; these are ours)")),
    differences=(
        "Training: Adam with a one-cycle learning rate and batches of 64 for the epochs of the setting; the paper does "
        "not give its optimiser or length (its dropout nets used SGD with max-norm weight constraints, not used here).",
        "Data: 54,000 training images (6,000 held out for validation, as everywhere in this project); the paper "
        "trained on all 60,000. Test: the same 10,000 official test images.",
        f"Loss: α · T² · KL(teacher_T ‖ student_T) + (1 − α) · cross-entropy, T = {HINTON_T:g}, "
        f"α = {HINTON_ALPHA:g}; "
        "the paper's soft-target weighting is described, not given as a number.",
    ),
    recipes=_hinton_recipes,
    rows=_hinton_rows,
    stage_epochs=lambda e: {"train": e["teacher"], "distill": 2 * e["student"]},  # the KD student and its control
)


# -------------------------------------------------------------------------------------- Deep Compression 2016

PRUNE_RATIO, PRUNE_ROUNDS = 0.92, 3  # the paper keeps 8 % of LeNet-300-100's weights, pruned and retrained iteratively
INDEX_BITS, SHARED_BITS = 5, 6  # the paper's relative-index and shared-weight widths for LeNet-300-100 (Table 2)


@dataclass(frozen=True)
class SparseLayout:
    """The weights of a deployed file in the compressed sparse layout of Deep Compression, computed (not deployed):
    the non-zero weights of each weight matrix, each with its distance from the previous one in `index_bits` (a
    filler zero where a gap is longer than the index can say), the other tensors at their stored size."""

    entries: int            # non-zeros plus filler zeros, over all weight matrices
    nonzero: int
    matrices: int
    dense_weights: int      # every weight of the matrices
    other_bytes: int        # biases, scales and zero points as stored
    index_bits: int
    huffman_bits: int       # the stored values and the indices Huffman-coded per matrix (code tables not counted)

    def size_bytes(self, value_bits: int, codebook_entries: int = 0) -> float:
        """Bytes of the layout with `value_bits` per stored value (a codebook of that many float32 entries a matrix
        for shared weights)."""
        bits = self.entries * (value_bits + self.index_bits) + self.matrices * codebook_entries * 32
        return bits / 8 + self.other_bytes

    @property
    def huffman_bytes(self) -> float:
        return self.huffman_bits / 8 + self.other_bytes


def huffman_bits(counts: list[int]) -> int:
    """The bits of a Huffman code of symbols occurring `counts` times (the sum of the merged weights)."""
    heap = [c for c in counts if c > 0]
    if len(heap) == 1:
        return heap[0]  # one symbol: a bit each
    heapq.heapify(heap)
    total = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        total += merged
        heapq.heappush(heap, merged)
    return total


def sparse_layout(onnx_path: Path, index_bits: int = INDEX_BITS) -> SparseLayout:
    """The deployed file's weight matrices (its 2-D initializers) in the relative-index sparse layout."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    entries = nonzero = matrices = dense = other = coded = 0
    span = 2 ** index_bits
    for tensor in onnx.load(str(onnx_path)).graph.initializer:
        values = numpy_helper.to_array(tensor)
        if values.ndim != 2:
            other += values.nbytes
            continue
        flat = values.ravel()
        where = np.flatnonzero(flat)
        gaps = np.diff(where, prepend=-1)  # distance from the previous non-zero (the first from the start)
        fillers = (gaps - 1) // span  # a filler zero (at distance `span`) each time a gap passes what the index says
        values_count, distances = Counter(flat[where].tolist()), Counter((gaps - fillers * span).tolist())
        values_count[0] += int(fillers.sum())
        distances[span] += int(fillers.sum())
        entries += len(where) + int(fillers.sum())
        nonzero, matrices, dense = nonzero + len(where), matrices + 1, dense + flat.size
        coded += huffman_bits(list(values_count.values())) + huffman_bits(list(distances.values()))
    return SparseLayout(entries, nonzero, matrices, dense, other, index_bits, coded)


def _deep_recipes(epochs: dict[str, int], seed: int) -> dict[str, Recipe]:
    base = Recipe(dataset="mnist", model="lenet-300-100", seed=seed, epochs=epochs["baseline"])
    pruned = replace(base, prune=PruneSpec(method="global-unstructured", ratio=PRUNE_RATIO, steps=PRUNE_ROUNDS,
                                           finetune_epochs=epochs["finetune"]))
    int8 = replace(pruned, quant=QuantSpec(mode="int8-static", granularity="per-channel", layout="plain"))
    return {"baseline": base, "pruned": pruned, "pruned-int8": int8}


def _deep_rows(results: dict[str, Result], store: Store) -> tuple[list[Row], list[str]]:
    from compression.pipeline import ONNX, compare_results

    base, pruned, int8 = results["baseline"], results["pruned"], results["pruned-int8"]
    paired = compare_results(store, base, int8).paired
    n, full = base.test_images, base.size_bytes
    layout = sparse_layout(store.path(int8, ONNX))
    kept = pruned.params_nonzero / pruned.params_total
    csr, shared = layout.size_bytes(8), layout.size_bytes(SHARED_BITS, 2 ** SHARED_BITS)
    measured, not_deployed = "measured (onnxruntime)", "computed, not deployed"
    rows = [
        Row("Baseline LeNet-300-100: test error", "1.64 %", f"{(1 - base.accuracy) * 100:.2f} %", measured,
            error_rate_interval(base.accuracy, n), "", (1 - base.accuracy) * 100),
        Row("Baseline size", "1,070 KB (float32 weights)", _kb(full), "measured (ONNX file)", "",
            f"{base.params_total:,} parameters", full),
        Row("Weights kept after pruning", "8 % (12× fewer)", f"{kept:.1%} ({1 / kept:.1f}× fewer)",
            "counted (non-zero weights)", "", f"global magnitude pruning, {PRUNE_ROUNDS} rounds with fine-tuning",
            kept),
        Row("Pruned: test error", "1.59 % (Han et al. 2015)", f"{(1 - pruned.accuracy) * 100:.2f} %", measured,
            error_rate_interval(pruned.accuracy, n), "", (1 - pruned.accuracy) * 100),
        Row("Pruned: file size", "— (counted in parameters)", f"{_times(full / pruned.size_bytes)} smaller; gzip "
            f"{_times(base.size_gzip_bytes / pruned.size_gzip_bytes)}", "measured (ONNX file, gzip)", "",
            "dense tensors store every zero", full / pruned.size_bytes),
        Row("Pruned + INT8: test error", "—", f"{(1 - int8.accuracy) * 100:.2f} %", measured,
            error_rate_interval(int8.accuracy, n), "onnxruntime int8-static, per-channel weights",
            (1 - int8.accuracy) * 100),
        Row("Pruned + INT8: file size", "—", f"{_kb(int8.size_bytes)}, {_times(full / int8.size_bytes)} smaller; "
            f"gzip {_kb(int8.size_gzip_bytes)}, {_times(full / int8.size_gzip_bytes)}", "measured (ONNX file, gzip)",
            "", "this project's deployable file", full / int8.size_bytes),
        Row(f"Sparse layout: INT8 values + {INDEX_BITS}-bit relative indices", "—",
            f"{_kb(csr)}, {_times(full / csr)} smaller", not_deployed, "",
            f"from the INT8 file's weights; {layout.entries - layout.nonzero:,} filler zeros", full / csr),
        Row("… + Huffman coding of values and indices", "—",
            f"{_kb(layout.huffman_bytes)}, {_times(full / layout.huffman_bytes)} smaller", not_deployed, "",
            "code tables not counted", full / layout.huffman_bytes),
        Row(f"Pruning + weight sharing ({SHARED_BITS}-bit codebook) + {INDEX_BITS}-bit indices", "32× (3.1 %)",
            f"{_kb(shared)}, {_times(full / shared)} smaller", not_deployed, "",
            "size at our sparsity; accuracy not measured (no k-means here)", full / shared),
        Row("Deep Compression (pruning + sharing + Huffman)", "1.58 % error, 27 KB, 40×", "—", "published only", "",
            "", None),
    ]
    why = [
        f"Pruning kept {kept:.1%} of the weights (the paper: 8 %), but the ONNX file stores every zero: the pruned "
        f"file is {_times(full / pruned.size_bytes)} smaller, and only gzip sees the zeros "
        f"({_times(base.size_gzip_bytes / pruned.size_gzip_bytes)} smaller compressed).",
        f"INT8 stores each weight in 1 byte instead of 4: pruning + INT8 is {_times(full / int8.size_bytes)} smaller "
        f"as deployed and {_times(full / int8.size_gzip_bytes)} under gzip, at {(1 - int8.accuracy) * 100:.2f} % test "
        f"error to the baseline's {(1 - base.accuracy) * 100:.2f} % (the paper: 1.58 % to 1.64 %); on the same test "
        f"images {paired.only_first} only the baseline got right and {paired.only_second} only the compressed model "
        f"(McNemar p = {paired.p_value:.2g}: {'within noise' if paired.within_noise else 'a real difference'}).",
        f"The rest of the paper's 40× is what this project does not deploy: a sparse layout storing only the "
        f"non-zeros with {INDEX_BITS}-bit relative indices would take {_kb(csr)} ({_times(full / csr)}; computed, "
        f"not deployed), "
        f"sharing {2 ** SHARED_BITS} weights a layer ({SHARED_BITS} bits, k-means) {_kb(shared)} "
        f"({_times(full / shared)}), and Huffman coding of our INT8 values and indices {_kb(layout.huffman_bytes)} "
        f"({_times(full / layout.huffman_bytes)}).",
    ]
    return rows, why


DEEP_COMPRESSION = Experiment(
    name="deep-compression",
    title="Deep Compression: pruning and quantization of LeNet-300-100 (MNIST)",
    citation="S. Han, H. Mao, W. J. Dally. Deep Compression: Compressing Deep Neural Networks with Pruning, Trained "
             "Quantization and Huffman Coding. ICLR 2016 (arXiv:1510.00149), Tables 1 and 2; pruning alone: S. Han, "
             "J. Pool, J. Tran, W. J. Dally, Learning both Weights and Connections, NIPS 2015",
    link="https://arxiv.org/abs/1510.00149",
    claim="LeNet-300-100 on MNIST: pruning keeps 8 % of the weights (12× fewer), then weight sharing (6-bit "
          "k-means codebooks, 5-bit relative indices) and Huffman coding make it 40× smaller (1,070 KB → 27 KB) "
          "at no loss of accuracy (1.64 % → 1.58 % test error).",
    settings=(Setting("classroom", {"baseline": 5, "finetune": 2}, "a few epochs: minutes, not hours"),
              Setting("paper", {"baseline": 40, "finetune": 20},
                      "long training and retraining (the paper gives no epoch counts; these are ours)")),
    differences=(
        f"Pruning: one magnitude threshold across the layers, {PRUNE_ROUNDS} rounds up to {PRUNE_RATIO:.0%} removed, "
        "each fine-tuned with Adam; the paper set a threshold per layer (8 %, 9 %, 26 % kept) and retrained with SGD.",
        "Quantization: onnxruntime's INT8 (a linear grid of 256 levels a channel, activations calibrated), the "
        "format this project deploys; the paper's trained weight sharing (a k-means codebook of 64 shared weights "
        "a layer, fine-tuned) is not implemented.",
        "Storage: ONNX stores tensors dense, so every pruned zero takes its full width; the paper stores the non-zeros "
        "only (compressed sparse rows with relative indices) and Huffman-codes values and indices.",
        "Data: 54,000 training images (6,000 held out for validation); the paper trained on all 60,000.",
    ),
    recipes=_deep_recipes,
    rows=_deep_rows,
    stage_epochs=lambda e: {"train": e["baseline"], "fine-tune": PRUNE_ROUNDS * e["finetune"]},
)

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (HINTON, DEEP_COMPRESSION)}


# --------------------------------------------------------------------------------------------------------- running


@dataclass
class EpochClock:
    """A progress callback passed on to `progress` that measures each training epoch's seconds by stage (its
    family: 'distill' for 'distill · student 1/2')."""

    progress: ProgressFn
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    counted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    started: float | None = None

    def __call__(self, event: Progress) -> None:
        if event.batches:
            now = time.perf_counter()
            if event.batch == 1:
                self.started = now
            if event.batch == event.batches and self.started is not None:
                stage = event.stage.partition(" · ")[0]
                self.seconds[stage] += now - self.started
                self.counted[stage] += 1
        self.progress(event)

    def per_epoch(self) -> dict[str, float]:
        """Mean seconds of an epoch of each training stage that ran."""
        return {stage: round(self.seconds[stage] / count, 3) for stage, count in self.counted.items()}


def estimate_seconds(experiment: Experiment, setting: str, per_epoch: dict[str, float]) -> float | None:
    """The training time of `setting` from measured seconds per epoch (None if a stage it trains was not timed)."""
    plan = experiment.stage_epochs(experiment.setting(setting).epochs)
    if any(stage not in per_epoch for stage in plan):
        return None
    return sum(count * per_epoch[stage] for stage, count in plan.items())


def paper_estimate(experiment: str, store: Store | None = None, seed: int = 0) -> float | None:
    """The paper setting's training time estimated by the stored classroom run of `experiment` (None if none)."""
    found = stored(ClassicRequest(experiment, SETTINGS[0], seed=seed), store)
    return found.paper_seconds if found is not None else None


def stored(request: ClassicRequest, store: Store | None = None) -> ClassicResult | None:
    """The stored result of `request`, or None (nothing computed)."""
    request.validate()
    payload = (store or Store()).get(KIND, request.key)
    return ClassicResult.from_dict(payload) if payload is not None else None


def run(request: ClassicRequest, store: Store | None = None, progress: ProgressFn | None = None) -> ClassicResult:
    """Run `request`'s experiment end to end (each recipe through the pipeline, stored like any result), then its
    ours-vs-published rows; from the store if it ran before. Offline without the data: one line naming the files."""
    experiment = request.validate()
    store = store or Store()
    found = stored(request, store)
    if found is not None:
        return found
    from compression import data, pipeline  # heavy: torch, onnxruntime
    from compression.train import Progress, silent

    progress = progress or silent
    recipes = request.recipes()
    missing = {r.dataset for r in recipes.values() if data.missing_files(r.dataset)}
    if missing:  # the download is tried (it may work); a failure is the data set's one line
        progress(Progress("classic", f"{', '.join(sorted(missing))} is not on disk yet: downloading it"))
    clock, started = EpochClock(progress), time.perf_counter()
    results = {}
    for i, (role, recipe) in enumerate(recipes.items(), 1):
        progress(Progress("classic", f"{experiment.name} {i}/{len(recipes)}: {role}"))
        results[role] = pipeline.run(recipe, store, clock)
    rows, why = experiment.rows(results, store)
    per_epoch = clock.per_epoch()
    result = ClassicResult(
        experiment=experiment.name, setting=request.setting, epochs_scale=request.epochs_scale, seed=request.seed,
        epochs=request.epochs, rows=rows, why=why, recipes={role: r.recipe_hash for role, r in results.items()},
        test_images=next(iter(results.values())).test_images, seconds=round(time.perf_counter() - started, 1),
        epoch_seconds=per_epoch, paper_seconds=estimate_seconds(experiment, "paper", per_epoch),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), model=experiment.name)
    return ClassicResult.from_dict(store.put(KIND, request.key, result.to_dict()))


def lines(result: ClassicResult) -> list[str]:
    """The result as text: its rows (ours, published, what ours is) and why-lines, for the CLI."""
    out = [f"{row.what}: ours {row.ours}" + (f" [95 % {row.interval}]" if row.interval else "")
           + f" ({row.source}); published {row.published}" for row in result.rows]
    return out + result.why + [f"{result.setting} setting, epochs {result.epochs}; the paper setting trains for "
                               f"{duration(result.paper_seconds)} here"]


def duration(seconds: float | None) -> str:
    """'about 3 h 20 min', 'about 4 min', or 'not timed'."""
    if seconds is None:
        return "not timed (parts came from the store)"
    minutes = math.ceil(seconds / 60)
    return f"about {minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"about {minutes} min"
