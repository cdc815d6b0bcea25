"""The app through Streamlit's AppTest: every page renders on digits from a store measured for real once per
session; the Workspace sidebar, the Overview, Trade-offs and Pipeline pages show what is stored; bad settings
are clear messages, not tracebacks; work started on a button is measured once and stored.

AppTest drops sidebar elements from its tree after a rerun when the app uses st.navigation, so the
sidebar's choices are set through session_state (the keys its widgets use); tests/e2e drives the real
widgets in Chromium."""

import json
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import app
from compression import describe, pipeline
from compression.data import screen_image
from compression.result import Histogram, Latency, Result
from compression.stats import Interval, Noise
from compression.recipe import PruneSpec, QuantSpec, Recipe
from compression.store import Store
from compression import tasks
from streamlit.proto.Metric_pb2 import Metric as MetricProto
from ui import figures, jobs, metrics, tables, text

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PAGES = [file for file, _, _ in app.PAGES]
EPOCHS = 3  # the measured store's baseline: enough for ~95 % on digits, quick to train
BASE = Recipe(epochs=EPOCHS)
PRUNED = replace(BASE, prune=PruneSpec("channel-l2", 0.5, finetune_epochs=1))
SIMULATED = replace(BASE, quant=QuantSpec("fake", bits=4))
COMBINED = replace(BASE, prune=PruneSpec("channel-l2", 0.5, finetune_epochs=1), quant=QuantSpec("int8-dynamic"))


@pytest.fixture(scope="session")
def measured(tmp_path_factory) -> Path:
    """A store holding the digits/cnn baseline and three compressed results (one simulated, one of two
    stages), all measured for real, once per test session."""
    root = tmp_path_factory.mktemp("measured")
    store = Store(root)
    for recipe in (BASE, PRUNED, SIMULATED, COMBINED):
        pipeline.run(recipe, store)
    return root


@pytest.fixture
def stored(measured, home, monkeypatch) -> Path:
    """This test's own copy of the measured store as its COMPRESSION_HOME."""
    shutil.copytree(measured, home, dirs_exist_ok=True)
    monkeypatch.setenv("COMPRESSION_HOME", str(home))
    return home


# Streamlit's markdown loads its emoji plugin for any text like this (a time 20:20:50 contains ':20:')
EMOJI_SHORTCODE = re.compile(r":(?!material/|streamlit:)[\w+-][\w_+-]*:")


def start(page: str | None = None, **choices) -> AppTest:
    """A new session of the app with the sidebar's `choices` (widget key -> value), on `page`, run once."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in {"epochs": EPOCHS, **choices}.items():
        at.session_state[key] = value
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_app_navigates_over_every_page_file():
    on_disk = {f"app_pages/{path.name}" for path in (ROOT / "app_pages").glob("*.py")}
    assert set(PAGES) == on_disk  # every page file is in the navigation, and every entry is a file
    assert [page.removeprefix("app_pages/").removesuffix(".py") for page in PAGES] == [
        "overview", "pruning", "quantization", "distillation", "pipeline", "tradeoffs", "sweep", "search",
        "classic"]


def test_sidebar_is_the_workspace_with_the_baseline_card(stored):
    at = start()
    assert {w.key for w in at.sidebar.selectbox} == {"dataset_choice", "model"}
    assert {w.key for w in at.sidebar.number_input} == {"seed", "epochs"}
    assert "digits" in at.sidebar.selectbox(key="dataset_choice").options
    card = {m.label: m.value for m in at.sidebar.metric}
    assert set(card) == {"Accuracy", "Size", "Latency", "FLOPs"}
    assert card["Accuracy"].endswith("%") and card["Latency"].endswith(" ms")


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_digits(stored, page):
    at = start(page)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.title, f"{page} has no title"
    texts = [e.value for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning")
             for e in getattr(at, kind)]
    shortcodes = [t for t in texts if EMOJI_SHORTCODE.search(str(t))]
    assert not shortcodes, shortcodes  # each would load Streamlit's 259 KB emoji table with the page


def test_overview_shows_families_baseline_samples_and_pareto_chart(stored):
    at = start()
    assert at.title[0].value == "Compression Explorer"
    assert {"Pruning", "Quantization", "Distillation"} <= {s.value for s in at.subheader}
    metrics = {m.label: m.value for m in at.main.metric}
    assert float(metrics["Test accuracy"].rstrip("%")) > 80
    assert metrics["Batch-32 latency"].endswith(" ms") and metrics["Batch-1 latency"].endswith(" ms")
    [images] = at.get("image")  # one row of sample images, one a class
    assert images.captions == [str(digit) for digit in range(10)]
    assert len(at.get("plotly_chart")) == 1
    assert any("Pareto frontier" in c.value for c in at.caption)


def test_tradeoffs_answers_budget_questions_and_compares_two_results(stored):
    at = start("app_pages/tradeoffs.py")
    assert at.selectbox[0].value == BASE.hash  # the sidebar's workspace comes first
    markdown = " ".join(m.value for m in at.markdown)
    assert re.search(r"(pts|pts, within noise)\) at", markdown)  # budget answers: accuracy and cost of the answer
    numbers = [m.value[len(":red[**"):][0] for m in at.markdown if m.value.startswith(":red[**")]
    assert numbers and set(numbers) <= {"1", "2", "3"}  # each answer card numbered as its question…
    [chart] = at.get("plotly_chart")
    rings = [t for t in json.loads(chart.proto.spec)["data"] if t.get("name") == "answer"]
    assert {n for ring in rings for text in ring["text"] for n in text.split(", ")} == set(numbers)  # …and ring
    assert len(at.get("download_button")) >= 1
    table = at.dataframe[0].value
    assert set(table["hash"]) == {BASE.hash, PRUNED.hash, SIMULATED.hash, COMBINED.hash}
    assert set(table["accuracy"]) == {"measured (onnxruntime)", "simulated (torch-simulated)"}
    columns = json.loads(at.dataframe[0].proto.columns)  # column_config as sent to the browser
    assert columns["test accuracy"]["type_config"] == {"type": "number", "format": "percent", "step": 0.0001}
    assert (table["test accuracy"] == table["test accuracy"].round(4)).all()  # rounded, not cut, to 2 decimals

    at.segmented_control(key="tradeoffs_metric").set_value("latency").run()
    assert not at.exception
    assert any("not drawn on the latency chart" in c.value for c in at.caption)

    at.multiselect(key="tradeoffs_compare").set_value([PRUNED.hash, COMBINED.hash]).run()
    assert not at.exception
    compare = at.dataframe[1].value
    assert list(compare.columns) == ["", "A", "B", "B vs A"]
    assert "test accuracy" in set(compare[""])
    accuracy = compare.set_index("")["A"]["test accuracy"]
    assert "(95%: " in accuracy  # the Wilson interval from the test split's size
    verdict = next(m.value for m in at.markdown if m.value.startswith("**Class by class**"))
    assert "on the same 360 test images" in verdict and "McNemar's exact test p = " in verdict
    assert ("within noise" in verdict) != ("a real difference" in verdict)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    classes = next(c for c in charts if "Accuracy change by class" in c["layout"].get("title", {}).get("text", ""))
    assert len(classes["data"][0]["x"]) == 10  # every digit

    at.multiselect(key="tradeoffs_compare").set_value([PRUNED.hash, SIMULATED.hash]).run()
    assert not at.exception  # a simulated result has no deployed file to compare image by image: one line
    assert any("Class by class: no test predictions are stored" in c.value and "simulated format" in c.value
               for c in at.caption)


def test_small_ratios_read_as_times_smaller_never_zero_or_minus_a_hundred_percent():
    assert text.ratio(0.49) == "0.49×" and text.ratio(1.5) == "1.50×" and text.ratio(0.07) == "0.07×"
    assert text.ratio(1 / 680) == "680× smaller"  # not "0.00×"
    assert text.change(1 / 680, 1.0) == "-99.85%"  # not "-100%": something is left
    assert text.change(0.5, 1.0) == "-50%" and text.change(1.0, 1.0) == "±0%" and text.change(0.0, 1.0) == "-100%"


def test_one_channel_images_are_dark_ink_on_white_and_small_counts_tick_whole():
    digit = np.zeros((1, 2, 3))
    digit[0, 0, 0] = 1.0  # one pixel of ink
    shown = screen_image(digit)
    assert shown.shape == (2, 3, 3) and shown.dtype == np.uint8
    assert shown[0, 0].tolist() == [0, 0, 0] and shown[1, 2].tolist() == [255, 255, 255]
    colour = np.full((3, 2, 2), 0.5)
    assert screen_image(colour)[0, 0].tolist() == [128, 128, 128]  # colour images are not inverted
    assert figures.histogram_figure(Histogram([1, 2], [0.0, 0.5, 1.0])).layout.yaxis.dtick == 1
    assert figures.histogram_figure(Histogram([10, 200], [0.0, 0.5, 1.0])).layout.yaxis.dtick is None


def test_tradeoffs_says_why_a_result_is_not_faster_and_profiles_it_beside_its_baseline(stored):
    """The causes read from each result's structure in the table and on the chart's hover; a timed result picked
    by its recipe in words shows them in full, and its per-op profile beside its baseline's once profiled (then
    its causes are the measured ones)."""
    at = start("app_pages/tradeoffs.py")
    why = dict(zip(at.dataframe[0].value["hash"], at.dataframe[0].value["why not faster"]))
    assert pd.isna(why[BASE.hash]) and why[SIMULATED.hash] == "simulated: not timed (from structure)"
    assert why[COMBINED.hash].startswith("first conv too narrow for the int8 kernel; dynamic int8 (ConvInteger)")
    [chart] = at.get("plotly_chart")
    hovers = {point[0]: point[1] for trace in json.loads(chart.proto.spec)["data"] for point in
              trace.get("customdata", [])}
    assert ("why not faster (from the model's structure):<br>  · first conv too narrow for the int8 kernel<br>  · "
            "dynamic int8 (ConvInteger)") in hovers[COMBINED.hash]
    assert "why not faster" not in hovers[BASE.hash]

    assert "Why not faster" in [s.value for s in at.subheader]
    picker = at.selectbox(key="tradeoffs_why")
    assert set(picker.options) == {f"{r.technique} · {describe.recipe(r.to_dict())}"  # the timed ones, in words
                                   for r in (PRUNED, COMBINED)}
    picker.set_value(COMBINED.hash).run()
    assert not at.exception and not at.error
    markdown = [m.value for m in at.markdown]
    assert any(m.startswith("Timed **") and "where its FLOPs predict" in m for m in markdown)
    assert "- conv 1 has 1 input channel(s), not a multiple of 4: onnxruntime's fast int8 convolution does not " \
           "apply; keeping that first block in float, or padding the input to 4 channels, avoids it" in markdown
    assert any("from the model's structure (not profiled yet" in c.value for c in at.caption)
    assert "Where the time goes" in [s.value for s in at.subheader]

    next(b for b in at.button if b.label == "Profile in onnxruntime").click().run(timeout=300)  # a job
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Profile in onnxruntime" not in [b.label for b in at.button]
    specs = [chart.proto.spec for chart in at.get("plotly_chart")]
    [ops] = [json.loads(spec)["data"] for spec in specs if "Time per op type" in spec]  # its ops, the baseline's
    assert [trace["name"] for trace in ops] == ["this model", "baseline"]
    assert {"ConvInteger", "Conv"} <= set(ops[0]["x"])
    assert any("Compute layers:" in spec for spec in specs)
    assert any(c.value.startswith("Measured · onnxruntime's profiler on") for c in at.caption)
    assert any(m.value.startswith("- dynamic quantization runs ConvInteger / MatMulInteger") for m in at.markdown)
    table = at.dataframe[0].value
    assert table.loc[table["hash"] == COMBINED.hash, "why not faster"].item().endswith("(measured)")


def test_budget_answers_are_deployable_unless_simulated_results_are_let_in(stored):
    """The simulated 4-bit model is the most accurate result under half the baseline's size (and within a point
    of it): by default no budget question is answered with it; with the toggle on it answers, flagged."""
    at = start("app_pages/tradeoffs.py")
    cards = [m.value for m in at.markdown if m.value.startswith(":red[**")]
    assert cards and not any("not deployable" in card or "· **quant** ·" in card for card in cards)
    at.toggle(key="tradeoffs_simulated").set_value(True).run()
    assert not at.exception
    cards = [m.value for m in at.markdown if m.value.startswith(":red[**")]
    assert cards[0].startswith(":red[**1**] · **quant** ·") and cards[0].endswith("**simulated: not deployable**]")


def test_tradeoffs_filters_hide_simulated_results(stored):
    at = start("app_pages/tradeoffs.py")
    at.pills(key="tradeoffs_kinds").set_value(["measured"]).run()
    assert not at.exception
    assert SIMULATED.hash not in set(at.dataframe[0].value["hash"])
    assert any("Filters hide 1 of 3" in c.value for c in at.caption)


def _pipeline_settings(at: AppTest, prune: bool = True, quant: str | None = "int8-dynamic") -> AppTest:
    at.toggle(key="pipe_distill").set_value(False)
    at.toggle(key="pipe_prune").set_value(prune)
    at.select_slider(key="pipe_finetune").set_value(1)
    at.toggle(key="pipe_quant").set_value(quant is not None)
    if quant is not None:
        at.selectbox(key="pipe_mode").set_value(quant)
    return at.run()


def test_pipeline_shows_a_stored_recipe_at_once_with_its_path(stored):
    at = _pipeline_settings(start("app_pages/pipeline.py"))
    assert not at.exception and not at.error
    assert not [b for b in at.button if b.label == "Run pipeline"]  # stored: nothing to run
    assert f"**Recipe** — {describe.recipe(COMBINED)}" in [m.value for m in at.markdown]
    assert "Test accuracy" in {m.label for m in at.main.metric}
    assert len(at.get("plotly_chart")) == 1
    stages = at.dataframe[0].value
    assert list(stages["stage"]) == ["baseline", "prune", "quantize"]


def test_pipeline_order_is_part_of_the_recipe(stored):
    at = _pipeline_settings(start("app_pages/pipeline.py"))
    at.selectbox(key="pipe_order_prune-quant").set_value(("quant", "prune")).run()
    assert not at.exception
    reordered = replace(COMBINED, order=("quant", "prune", "distill"))
    assert f"**Recipe** — {describe.recipe(reordered)}" in [m.value for m in at.markdown]
    assert [b for b in at.button if b.label == "Run pipeline"]  # not measured yet


def test_a_recipe_running_in_a_job_reads_running_not_unmeasured(stored):
    """The recipe the Pipeline page shows runs already (started before a rerun, or by another session): the page
    says so, with its job's step, instead of "not measured yet"."""
    from ui import jobs

    at = _pipeline_settings(start("app_pages/pipeline.py"))
    at.select_slider(key="pipe_finetune").set_value(640).run()  # minutes of fine-tuning: running all along
    long = replace(COMBINED, prune=replace(COMBINED.prune, finetune_epochs=640))
    assert not any(i.value.startswith("Running now") for i in at.info)
    jobs.start_job(long.hash, "long", tasks.run_recipe, long, str(stored), owner="another session")
    try:
        at.run()
        assert any(i.value.startswith("Running now (") and "**Run pipeline** follows it" in i.value
                   for i in at.info), [i.value for i in at.info]
    finally:
        jobs.cancel(long.hash, "another session")


def test_pipeline_refuses_a_recipe_that_cannot_apply_with_a_clear_message(stored):
    at = start("app_pages/pipeline.py")
    at.toggle(key="pipe_quant").set_value(False)
    at.slider(key="pipe_ratio").set_value(0.6)  # 32 channels keep 12, rounded down to a multiple of 16: none
    at.selectbox(key="pipe_round_to").set_value(16)
    at.run()
    [run] = [b for b in at.button if b.label == "Run pipeline"]
    assert run.disabled  # refused before any work, as the technique pages refuse it
    assert not at.exception
    assert "would empty layer" in at.error[0].value


@pytest.mark.slow
def test_pipeline_runs_a_new_recipe_on_the_button_then_serves_it(stored):
    at = _pipeline_settings(start("app_pages/pipeline.py"), quant="fp16")
    run = [b for b in at.button if b.label == "Run pipeline"]
    assert run, "fp16 after pruning is not in the measured store"
    run[0].click().run(timeout=300)
    assert not at.exception and not at.error
    assert "Test accuracy" in {m.label for m in at.main.metric}
    recipe = replace(COMBINED, quant=QuantSpec("fp16"))
    assert Store().get_result(recipe.hash) is not None

    again = _pipeline_settings(start("app_pages/pipeline.py"), quant="fp16")  # a new session: from the store
    assert not [b for b in again.button if b.label == "Run pipeline"]


def _wait_for_error(at: AppTest, timeout: float = 90) -> str:
    """Rerun until the page shows an error (the baseline job fails in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        errors = [e.value for e in at.error]
        if errors:
            return errors[0]
        time.sleep(0.5)
        at.run()
        assert not at.exception
    raise AssertionError("no error shown")


def test_missing_dataset_is_a_clear_error_not_a_traceback():
    at = start(dataset_choice="mnist")
    message = _wait_for_error(at)
    assert "mnist: files not found" in message
    assert not at.exception


def test_image_folder_path_that_does_not_exist_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESSION_DATA_ROOTS", str(tmp_path))  # inside the roots: the folder's own error
    at = start(dataset_choice="image folder…", imagefolder_path=str(tmp_path / "nowhere"))
    assert "does not exist" in at.error[0].value and not at.button


@pytest.mark.slow
def test_pruning_page_prunes_and_compares_with_the_baseline(stored):
    at = start("app_pages/pruning.py")
    assert not at.exception and at.button[0].label == "Prune and measure"
    at.selectbox(key="prune_method").set_value("channel-l2")
    at.slider(key="prune_ratio").set_value(0.3)
    at.select_slider(key="prune_finetune").set_value(1)
    at.button[0].click().run(timeout=300)
    assert not at.exception and not at.error
    metrics = {m.label: m for m in at.metric}
    delta = metrics["Test accuracy"].delta  # short: six in a row are not cut off
    assert delta.endswith(" pts") or delta == "within noise" and "pts: within noise (McNemar" in metrics[
        "Test accuracy"].help  # within noise: the change itself in the tooltip
    assert all(len(m.delta) <= 12 for m in metrics.values() if m.delta)  # 'within noise' fits at 1280 px
    assert any(c.value.startswith("Against the baseline:") for c in at.caption)


def test_a_job_outlives_the_page_that_started_it(stored):
    """Long work runs in a background job: a rerun interrupts the page, not the work, which still stores."""
    recipe = replace(BASE, prune=PruneSpec("l1-unstructured", 0.3, finetune_epochs=0))
    job = jobs.start_job(recipe.hash, "prune", tasks.run_recipe, recipe, str(stored))
    again = jobs.start_job(recipe.hash, "again", tasks.run_recipe, recipe, str(stored))
    assert again.created == job.created and again.label == "prune"  # joined, not twice
    assert job.wait(120) and job.error is None
    assert Store(stored).get_result(recipe.hash) is not None
    assert job.messages, "the job reports progress for the page that follows it"


def test_a_job_belongs_to_its_store(tmp_path, monkeypatch):
    """The same recipe asked of another store ($COMPRESSION_HOME) is that store's own job: a test run moves
    through several stores in one process, and a job joined across them would store into the wrong one."""
    recipe = Recipe(epochs=1)
    monkeypatch.setenv("COMPRESSION_HOME", str(tmp_path / "a"))
    first = jobs.start_job(recipe.hash, "a", tasks.run_recipe, recipe, str(tmp_path / "a"))
    assert jobs.find_job(recipe.hash).created == first.created
    monkeypatch.setenv("COMPRESSION_HOME", str(tmp_path / "b"))
    assert jobs.find_job(recipe.hash) is None
    second = jobs.start_job(recipe.hash, "b", tasks.run_recipe, recipe, str(tmp_path / "b"))
    assert jobs.find_job(recipe.hash).label == "b"
    assert first.wait(120) and second.wait(120) and not first.error and not second.error
    assert Store(tmp_path / "a").get_result(recipe.hash) and Store(tmp_path / "b").get_result(recipe.hash)


def stage_widgets(at: AppTest, prefix: str) -> dict[str, tuple]:
    """The stage form's widgets on a page, by field (widget key without `prefix`): label, range and options."""
    shown = {}
    for kind in ("slider", "select_slider", "selectbox", "number_input", "checkbox"):
        for widget in getattr(at.main, kind):
            if widget.key and widget.key.startswith(prefix + "_"):
                shown[widget.key.removeprefix(prefix + "_")] = (
                    widget.label, *(tuple(getattr(widget, a, ())) if a == "options" else getattr(widget, a, None)
                                    for a in ("min", "max", "step", "options")))
    return shown


@pytest.mark.parametrize("page, prefix, fields", [
    ("app_pages/pruning.py", "prune", {"method", "ratio", "lam", "steps", "finetune", "ft_patience", "kd", "round_to"}),
    ("app_pages/quantization.py", "quant", {"mode", "bits", "scheme", "granularity", "activations", "calibration",
                                            "calib_samples", "qat_epochs", "qat_patience"}),
    ("app_pages/distillation.py", "distill", {"temperature", "alpha", "student", "width", "epochs",
                                              "distill_patience"}),
])
def test_a_stage_form_is_the_same_on_its_technique_page_and_on_the_pipeline(stored, page, prefix, fields):
    """One form a stage: the Pipeline offers every setting of the technique page, with the same labels, ranges
    and choices (they had drifted: QAT up to 20 epochs on one page and 10 on the other)."""
    technique = stage_widgets(start(page), prefix)
    pipeline_at = start("app_pages/pipeline.py")
    for stage in ("pipe_distill", "pipe_prune", "pipe_quant"):
        pipeline_at.toggle(key=stage).set_value(True)
    combined = stage_widgets(pipeline_at.run(), "pipe")
    assert fields <= set(technique) and fields <= set(combined)  # besides them, a page's live views' own widgets
    assert {name: combined[name] for name in fields} == {name: technique[name] for name in fields}


def test_deltas_within_noise_say_so_and_clear_ones_do_not():
    within, beyond = Noise(True, "McNemar p = 0.6"), Noise(False, "McNemar p = 1e-06")
    assert text.points(0.0001, within) == "+0.01 pts, within noise" and text.points(-0.15, beyond) == "-15.00 pts"
    assert text.change(1.01, 1.0, within) == "+1%, within noise" and text.change(0.5, 1.0, beyond) == "-50%"
    assert text.points(0.02) == "+2.00 pts"  # nothing known: no verdict
    base = replace(pipeline_result(BASE, 0.95), test_images=360)
    same = replace(pipeline_result(PRUNED, 0.951), test_images=360, accuracy_p_value=0.6, speedup_vs_baseline=1 / 1.01,
                   speedup_interval=Interval(0.97, 1.02))
    worse = replace(pipeline_result(PRUNED, 0.80), test_images=360, accuracy_p_value=1e-6, speedup_vs_baseline=2.0,
                    speedup_interval=Interval(1.9, 2.1))
    assert text.latency_text(same, base).endswith("(×1.01, within noise)")
    assert "within noise" not in text.latency_text(worse, base)
    shown = {f.label: f for f in metrics.metric_figures(same)}
    assert shown["Test accuracy"].delta == "within noise" and shown["Test accuracy"].delta_color == "off"
    assert shown["Latency p50"].delta == "within noise" and shown["Latency p50"].delta_color == "off"
    assert "+0.10 pts: within noise (McNemar" in shown["Test accuracy"].help  # the change itself in the tooltip
    assert "+1%: within noise (speed-up 95 % interval 0.97–1.02×" in shown["Latency p50"].help
    clear = {f.label: f for f in metrics.metric_figures(worse)}
    assert clear["Test accuracy"].delta == "-15.00 pts" and clear["Test accuracy"].delta_color == "normal"
    assert clear["Latency p50"].delta_color == "inverse" and "within noise" not in clear["Latency p50"].delta
    assert "within noise" not in clear["Size"].delta  # sizes are exact
    assert tables.noisy_deltas(same) == "accuracy, latency" and tables.noisy_deltas(worse) == "—"


def pipeline_result(recipe: Recipe, accuracy: float) -> Result:
    """A hand-built result of `recipe` on digits (baseline accuracy 0.95), timed 2 ms for the baseline."""
    latency = Latency(p50=2.0, p90=2.0, batch=32, threads=1, runs=100, cpu_p50=2.0)
    return Result(recipe=recipe.to_dict(), recipe_hash=recipe.hash, dataset="digits", model="cnn", accuracy=accuracy,
                  accuracy_source="onnxruntime", baseline_accuracy=0.95, params_total=100, params_nonzero=100,
                  sparsity=0.0, size_bytes=1000, size_gzip_bytes=900, flops=1000, latency_ms=latency,
                  latency_ms_single=None, latency_measured=True, speedup_vs_baseline=1.0, size_ratio_vs_baseline=0.5,
                  stage_seconds={}, created_at="2026-01-01T00:00:00+00:00", baseline_latency_ms=latency,
                  technique=recipe.technique)


def test_a_metric_within_noise_reads_so_and_is_grey_on_the_page(stored):
    fp32 = replace(BASE, quant=QuantSpec("fp32"))  # the float file as it is: the baseline's own predictions
    assert pipeline.run(fp32, Store(stored)).accuracy_p_value == 1.0
    at = start("app_pages/pipeline.py")
    at.toggle(key="pipe_distill").set_value(False)
    at.toggle(key="pipe_prune").set_value(False)
    at.toggle(key="pipe_quant").set_value(True)
    at.selectbox(key="pipe_mode").set_value("fp32")
    at.run()
    assert not at.exception and f"**Recipe** — {describe.recipe(fp32)}" in [m.value for m in at.markdown]
    accuracy = next(m for m in at.main.metric if m.label == "Test accuracy")
    assert "within noise" in accuracy.proto.delta and accuracy.proto.color == MetricProto.MetricColor.GRAY
