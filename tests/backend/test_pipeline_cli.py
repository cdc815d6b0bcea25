"""End to end: the pipeline measures and stores, the store serves repeats, the CLI speaks JSON and
refuses bad input with one line and exit code 2."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from compression import pipeline, prune
from compression.__main__ import build_parser, recipe_from, stages_given
from compression.errors import CompressionError
from compression.recipe import DistillSpec, PruneSpec, QuantSpec, Recipe
from compression.result import QuantReport, Result
from compression.store import Store

ROOT = Path(__file__).resolve().parents[2]
STABLE_KEYS = {  # the Result keys other tools rely on (docs/ARCHITECTURE.md, "Stable surface")
    "recipe", "recipe_hash", "dataset", "model", "accuracy", "accuracy_source", "baseline_accuracy",
    "params_total", "params_nonzero", "sparsity", "size_bytes", "size_gzip_bytes", "flops", "latency_ms",
    "latency_ms_single", "latency_measured", "speedup_vs_baseline", "size_ratio_vs_baseline", "stage_seconds",
    "created_at",
}


def cli(*args: str, home: Path) -> subprocess.Popen:
    env = {**os.environ, "COMPRESSION_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "compression", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_baseline_then_pruned_run_measured_in_onnxruntime_and_served_from_the_store(home):
    store = Store()
    base = pipeline.run(Recipe(epochs=8), store)
    assert STABLE_KEYS <= set(base.to_dict())
    assert base.accuracy_source == "onnxruntime" and base.accuracy > 0.93
    assert base.speedup_vs_baseline == 1.0 and base.size_ratio_vs_baseline == 1.0
    assert base.latency_ms.batch == 32 and base.latency_ms_single.batch == 1 and base.latency_ms.runs >= 100
    assert base.provenance.cpu_flags.keys() >= {"avx2", "avx512_vnni"}
    assert (home / base.artifacts["model.onnx"]).stat().st_size == base.size_bytes

    pruned = pipeline.run(Recipe(epochs=8, prune=PruneSpec("channel-l2", 0.5, finetune_epochs=3)), store)
    assert pruned.baseline_accuracy == base.accuracy
    assert pruned.flops_ratio_vs_baseline < 0.35 and pruned.size_ratio_vs_baseline < 0.5
    assert pruned.params_total < 0.5 * base.params_total
    assert pruned.size_gzip_ratio_vs_baseline == pytest.approx(pruned.size_gzip_bytes / base.size_gzip_bytes)
    timed = (pruned.latency_ms, pruned.baseline_latency_ms)
    assert all(t.clock == "thread CPU time" and 0 < t.cpu_p50 <= 1.5 * t.p50 for t in timed)  # one thread: CPU time
    assert pruned.speedup_vs_baseline == pytest.approx(pruned.baseline_latency_ms.cpu_p50 / pruned.latency_ms.cpu_p50)
    assert pruned.speedup_vs_baseline in pruned.speedup_interval and base.speedup_interval is None  # paired rounds
    assert 0 < pruned.accuracy_p_value <= 1 and base.accuracy_p_value is None  # McNemar on the test predictions

    again = pipeline.run(Recipe(epochs=8, prune=PruneSpec("channel-l2", 0.5, finetune_epochs=3)), store)
    assert again.from_store and again.to_dict() | {"from_store": False} == pruned.to_dict()

    two_threads = pipeline.run(Recipe(epochs=8, threads=2), store)  # timing differs, training does not
    assert two_threads.latency_ms.threads == 2 and two_threads.recipe_hash != base.recipe_hash
    assert two_threads.latency_ms.cpu_p50 is None and two_threads.latency_ms.clock == "wall time"  # the pool works
    assert two_threads.accuracy == base.accuracy and two_threads.stage_seconds["train"] < 1.0
    assert len(store.list("weights")) == 1

    table = pipeline.sensitivity_table(Recipe(epochs=8), "channel-l2", store)
    assert table.baseline_hash == base.recipe_hash and table.ratios[0] == 0.1
    assert [row.name for row in table.layers] == ["features.0", "features.3", "classifier.1"]
    assert pipeline.sensitivity_table(Recipe(epochs=8), "channel-l2", store) == table
    assert store.list("sensitivity") == [table.to_dict()]
    assert pipeline.stored_sensitivity(Recipe(epochs=8), "channel-l2", store) == table
    assert pipeline.stored_sensitivity(Recipe(epochs=8), "channel-l1", store) is None  # never computed here

    shares = prune.layer_removal(base, pruned)  # what the Pruning page's per-layer bars draw
    assert [s.name for s in shares] == ["features.0", "features.3", "classifier.1", "classifier.3"]
    assert shares[0].removed == pytest.approx(0.5) and shares[1].removed == pytest.approx(0.75)  # in and out halved
    assert all(s.zeroed == 0 for s in shares)  # structured: nothing left as zeros


@pytest.mark.slow
def test_quantization_distillation_and_stage_order_through_the_pipeline(home):
    store = Store()
    base = pipeline.run(Recipe(epochs=5), store)
    int8 = pipeline.run(Recipe(epochs=5, quant=QuantSpec("int8-static", calib_samples=64)), store)
    assert int8.accuracy_source == "onnxruntime" and int8.latency_measured
    if int8.quant.layout_choice.layout == "float-first":  # the auto layout kept the first conv in float on purpose
        assert int8.quant.float_compute_ops == {"Conv": 1} and int8.quant.integer_ops.get("QLinearConv") == 1
    else:
        assert int8.quant.runs_integer
    assert int8.size_ratio_vs_baseline < 0.3 and abs(int8.accuracy - base.accuracy) < 0.02
    assert [s.stage for s in int8.stages] == ["baseline", "quant"] and int8.technique == "quant"
    calibrated = [layer for layer in int8.quant.layers if layer.activation.clip_max is not None]
    assert isinstance(int8.quant, QuantReport) and calibrated and all(layer.activation.clip_max > 0 for layer in calibrated)
    if int8.quant.layout_choice.layout == "float-first":  # its first conv reads the float input: no clip range
        assert calibrated == int8.quant.layers[1:]
    assert Store().get_result(int8.recipe_hash).quant == int8.quant  # typed again after the JSON round trip

    fake = pipeline.run(Recipe(epochs=5, quant=QuantSpec("fake", bits=4)), store)
    assert fake.accuracy_source == "torch-simulated" and fake.size_source.startswith("computed")
    assert not fake.latency_measured and fake.latency_ms is None and fake.speedup_vs_baseline is None
    assert fake.speedup_interval is None and fake.accuracy_p_value is None  # no file, no paired predictions
    assert Result.from_dict(fake.to_dict()) == fake

    prune = PruneSpec("channel-l2", 0.5, finetune_epochs=1)
    pruned = pipeline.run(Recipe(epochs=5, prune=prune), store)
    then_quant = pipeline.run(Recipe(epochs=5, prune=prune, quant=QuantSpec("fake", bits=8)), store)
    quant_first = pipeline.run(Recipe(epochs=5, prune=prune, quant=QuantSpec("fake", bits=8),
                                      order=("quant", "prune")), store)
    assert [s.stage for s in then_quant.stages] == ["baseline", "prune", "quant"]
    assert [s.stage for s in quant_first.stages] == ["baseline", "quant", "prune"]
    assert "prune" not in then_quant.stage_seconds  # the pruned model was reused from the store
    assert then_quant.stages[1] == pruned.stages[1] and then_quant.params_total == pruned.params_total

    student = pipeline.run(Recipe(epochs=5, distill=DistillSpec(width=0.25, epochs=6)), store)
    report = student.distill
    assert report.teacher_accuracy == base.accuracy and report.student_accuracy == student.accuracy
    assert report.kd_gain == pytest.approx(report.student_accuracy - report.control_accuracy)
    assert 0 < report.kd_p_value <= 1 and report.kd_noise(student.test_images) is not None  # McNemar, KD vs control
    assert student.params_total < base.params_total / 8 and student.accuracy > 0.5  # chance: 0.1
    assert [s.stage for s in student.stages] == ["baseline", "distill"]

    taught = pipeline.run(Recipe(epochs=5, distill=DistillSpec(width=0.25, epochs=6), prune=replace(prune, kd=True)),
                          store)  # the baseline teaches the pruned student's fine-tuning
    assert [s.stage for s in taught.stages] == ["baseline", "distill", "prune"] and "distill" not in taught.stage_seconds
    assert taught.params_total < student.params_total and taught.accuracy > 0.5


def test_a_structured_ratio_that_empties_a_layer_stores_nothing(home):
    store = Store()
    with pytest.raises(CompressionError, match="would empty layer"):
        pipeline.run(Recipe(model="mobilenet", epochs=1, prune=PruneSpec("channel-l2", 0.95)), store)
    assert store.list("result") == []


@pytest.mark.slow
def test_cli_baseline_prints_result_json_and_progress(home):
    proc = cli("baseline", "--epochs", "3", "--json", home=home)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert STABLE_KEYS <= set(result) and result["accuracy"] > 0.8
    assert "[train] epoch 3/3" in err and "Traceback" not in err
    repeat = cli("baseline", "--epochs", "3", "--json", home=home)
    out2, err2 = repeat.communicate(timeout=60)
    assert json.loads(out2)["recipe_hash"] == result["recipe_hash"] and "served from the store" in err2


BAD_INPUT = [
    (("baseline", "--dataset", "nope"), "unknown dataset 'nope'"),
    (("baseline", "--epochs", "-1"), "epochs must not be negative"),
    (("baseline", "--dataset", "imagefolder:/no/such/folder"), "does not exist"),
    (("baseline", "--model", "vgg"), "unknown model 'vgg'"),
    (("run", "--prune-method", "channel-l2", "--prune-ratio", "0.99"), "within 0 … 0.95"),
    (("run", "--prune-method", "wanda"), "invalid choice"),
    (("run", "--prune-method", "activation", "--prune-lambda", "2"), "lambda must be within 0 … 1"),
    (("baseline", "--epochs", "many"), "invalid int value"),
    (("run", "--quant", "fake", "--bits", "1"), "bits must be within 2 … 16"),
    (("run", "--quant", "int4"), "invalid choice"),
    (("run", "--quant", "int8-static", "--calibration", "magic"), "invalid choice"),
    (("run", "--quant", "int8-dynamic", "--qat-epochs", "2"), "QAT applies to int8-static and fake"),
    (("run", "--bits", "4"), "quantization flags need --quant"),
    (("run", "--distill-temperature", "30"), "temperature must be within 1 … 20"),
    (("run", "--distill-alpha", "1.5"), "alpha must be within 0 … 1"),
    (("run", "--distill-width", "0.05"), "width must be within 0.125 … 1"),
    (("run", "--prune-method", "channel-l2", "--finetune-patience", "-1"), "fine-tune patience must be within 0 … 200"),
    (("run", "--quant", "int8-static", "--qat-epochs", "3", "--qat-patience", "-1"), "QAT patience must be within"),
    (("run", "--distill-patience", "500"), "distill patience must be within 0 … 200"),
    (("run", "--prune-method", "channel-l2", "--order", "prune,fold"), "unknown stage 'fold'"),
    (("run", "--prune-method", "channel-l2", "--quant", "fp16", "--order", "prune"), "leaves out the quant stage"),
]


def test_cli_bad_input_is_one_line_and_exit_code_2(home):
    procs = [(cli(*args, home=home), message) for args, message in BAD_INPUT]  # in parallel: imports dominate
    for proc, message in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 2, (message, err)
        assert out == "" and message in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
    assert Store().list("result") == []


def test_cli_prune_kd_asks_for_fine_tuning_against_the_baseline():
    argv = ["run", "--prune-method", "channel-l2", "--finetune-epochs", "80", "--prune-kd"]
    recipe = recipe_from(build_parser().parse_args(argv), stages_given(argv))
    assert recipe.prune == PruneSpec("channel-l2", 0.5, finetune_epochs=80, kd=True) and recipe.stages == ("prune",)
    labels_argv = [*argv[:-1], "--no-prune-kd"]
    by_labels = recipe_from(build_parser().parse_args(labels_argv), stages_given(labels_argv))
    assert not by_labels.prune.kd and by_labels.hash != recipe.hash and by_labels.stage_key(0) != recipe.stage_key(0)
    assert recipe_from(build_parser().parse_args(argv[:-1]), stages_given(argv[:-1])).prune.kd  # KD by default


def test_cli_patience_flags_reach_the_specs():
    argv = ["run", "--finetune-patience", "0", "--distill-patience", "7", "--quant", "int8-static", "--qat-epochs",
            "4", "--qat-patience", "3"]
    recipe = recipe_from(build_parser().parse_args(argv), stages_given(argv))
    assert recipe.stages == ("distill", "prune", "quant")
    assert (recipe.prune.patience, recipe.distill.patience, recipe.quant.qat_patience) == (0, 7, 3)
    defaults = ["run", "--prune-method", "channel-l2", "--distill-width", "0.25"]
    recipe = recipe_from(build_parser().parse_args(defaults), stages_given(defaults))
    assert recipe.prune == PruneSpec("channel-l2", 0.5) and recipe.distill == DistillSpec()
