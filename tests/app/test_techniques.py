"""The technique pages (Pruning, Quantization, Distillation) through Streamlit's AppTest: each renders on
digits; Run stores a result and shows its metrics against the baseline, each marked measured or simulated;
the same settings in a new session show the stored result without running anything; bad settings are a
one-line error; a measured result's per-node profile is one click away.

The tests of this file share one store (one COMPRESSION_HOME), so the digits baseline (2 epochs) is trained
once, not once a test: the sidebar starts it in the background on the first run. Widgets are set through
session_state (their keys), as in tests/app/test_pages.py."""

import re
from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from compression.catalog import ROUND_TO_AUTO
from compression.result import Result
from compression.store import Store

APP = str(Path(__file__).resolve().parents[2] / "app.py")
EPOCHS = 2  # the baseline's epochs: enough for digits to be well above chance, seconds to train
RUN_TIMEOUT = 300
LABELS = ["Test accuracy", "Size", "gzip size", "FLOPs", "Latency p50", "Zero weights"]


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    return tmp_path_factory.mktemp("techniques_home")


@pytest.fixture(autouse=True)
def home(shared_home, monkeypatch):
    """Overrides conftest's per-test home: this file's tests share a store (and so the trained baseline)."""
    monkeypatch.setenv("COMPRESSION_HOME", str(shared_home))
    return shared_home


def open_page(page: str, **choices) -> AppTest:
    """A new session with widget `choices` (key -> value) on `page`, run once without errors."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["epochs"] = EPOCHS
    for key, value in choices.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(page).run()
    assert not at.exception
    return at


def click(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click().run(timeout=RUN_TIMEOUT)
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def metrics(at: AppTest) -> dict[str, object]:
    return {m.label: m for m in at.main.metric}


def captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.main.caption)


def test_technique_pages_render_on_digits():
    at = open_page("app_pages/pruning.py")
    for page, title, button in (("app_pages/pruning.py", "Pruning", "Prune and measure"),
                                ("app_pages/quantization.py", "Quantization", "Quantize and measure"),
                                ("app_pages/distillation.py", "Distillation", "Distil and measure")):
        at.switch_page(page).run()
        assert not at.exception and not at.error
        assert at.title[0].value == title
        assert button in [b.label for b in at.button]


@pytest.mark.slow
def test_pruning_run_stores_result_shows_deltas_and_serves_it_again():
    choices = dict(prune_method="l1-unstructured", prune_ratio=0.6, prune_finetune=1)
    at = click(open_page("app_pages/pruning.py", **choices), "Prune and measure")
    shown = metrics(at)
    assert list(shown) == [*LABELS, "Before pruning", "Right after the cut", "After fine-tuning"]
    assert re.search(r" pts$|^within noise$", shown["Test accuracy"].delta) and shown["Size"].delta.endswith("%")
    assert float(shown["gzip size"].value.rstrip("×")) < 0.8  # the zeros show in gzip…
    assert shown["FLOPs"].value == "1.00×"                    # …not in dense FLOPs
    assert shown["Zero weights"].value == "60%"
    assert "measured · onnxruntime, test split" in captions(at)
    assert "l1-unstructured at 60%, 1 round(s)" in [s.value for s in at.subheader]
    assert any("only the gzip size shows the sparsity" in i.value for i in at.info)
    assert at.selectbox(key="prune_view_layer").value == "features.0"  # the live cut on the baseline's weights
    assert any("173 of 288 weights at or below the cut" in chart.proto.spec for chart in at.get("plotly_chart"))

    assert "Where the time goes" in [s.value for s in at.subheader]  # not profiled yet: its button
    click(at, "Profile in onnxruntime")  # a job; the page redraws from the stored profile
    assert "Profile in onnxruntime" not in [b.label for b in at.button]
    assert any("Compute layers:" in chart.proto.spec and "conv 1" in chart.proto.spec for chart in at.get("plotly_chart"))
    assert any(m.value.startswith("- 60% of the weights are zeros, but the dense kernels still multiply them")
               for m in at.markdown)
    assert "Measured · onnxruntime's profiler on" in captions(at)

    at.slider(key="prune_ratio").set_value(0.3).run()  # other settings: not measured, nothing runs
    assert not at.main.metric and any("Not measured with these settings" in i.value for i in at.info)
    at.slider(key="prune_ratio").set_value(0.6).run()  # back: the stored result, at once
    assert {m.label: m.value for m in at.main.metric} == {k: m.value for k, m in shown.items()}

    again = open_page("app_pages/pruning.py", **choices)  # a new session: served from the store, no run
    assert {m.label: m.value for m in again.main.metric} == {k: m.value for k, m in shown.items()}

    assert at.checkbox(key="prune_kd").value  # KD fine-tuning by default
    at.checkbox(key="prune_kd").uncheck().run()  # labels-only fine-tuning is another recipe: not measured yet
    assert not at.main.metric
    click(at, "Prune and measure")
    stored = [Result.from_dict(p) for p in Store().list("result")]
    labels = [r for r in stored if r.recipe.get("prune") and not r.recipe["prune"]["kd"]]
    assert len(labels) == 1 and labels[0].recipe["prune"]["ratio"] == 0.6
    assert metrics(at)["Zero weights"].value == "60%"


@pytest.mark.slow
def test_quantization_int8_static_runs_integer_and_fake_is_labelled_simulated():
    at = click(open_page("app_pages/quantization.py", quant_mode="int8-static", quant_calib_samples=64),
               "Quantize and measure")
    shown = metrics(at)
    assert list(shown) == LABELS
    assert float(shown["Size"].value.rstrip("×")) < 0.5  # int8 weights: about a quarter of float32
    assert shown["Latency p50"].value.endswith("×")
    assert "measured · onnxruntime, test split" in captions(at)
    assert any("integer" in e.value for e in (*at.success, *at.warning))  # said whether INT8 ran as integers
    assert any("scale" in formula.value for formula in at.latex)  # the article's formula, filled in
    [download] = [b for b in at.get("download_button") if "Download the ONNX file" in b.proto.label]
    assert download.proto.deferred_file_id  # the deployable file, read when the button is clicked

    at.selectbox(key="quant_mode").set_value("fake").run()
    at.slider(key="quant_bits").set_value(4).run()
    click(at, "Quantize and measure")
    shown = metrics(at)
    assert shown["Latency p50"].value == "—" and shown["gzip size"].value == "—"
    assert "simulated · torch-simulated, test split" in captions(at)
    assert "not timed" in captions(at)
    assert "No file to download: a simulated format exists only in torch." in captions(at)

    # the page's settings are the canonical recipes (the CLI's): the Trade-offs page can compare them
    from compression.recipe import QuantSpec, Recipe
    from ui import tables

    base, store = Recipe(epochs=EPOCHS), Store()
    int8, fake = (store.get_result(replace(base, quant=q).hash)
                  for q in (QuantSpec("int8-static", calib_samples=64), QuantSpec("fake", bits=4)))
    table = tables.results_table([int8, fake], store.get_result(base.hash))
    assert table["accuracy"].tolist() == ["measured (onnxruntime)", "simulated (torch-simulated)"]
    assert table["latency (ms)"].notna().tolist() == [True, False]  # measured, not timed
    assert table["FLOPs predict ×"].tolist() == [pytest.approx(1.0)] * 2  # quantization keeps the FLOPs
    from ui import figures
    assert f"speed-up {int8.speedup_vs_baseline:.2f}× timed, 1.00× by FLOPs" in figures.hover_lines(int8, None)
    assert "by FLOPs" not in figures.hover_lines(fake, None)  # not timed: nothing to set beside


def test_quantization_mixed_precision_shows_its_sensitivity_table():
    at = click(open_page("app_pages/quantization.py", quant_mode="int8-static", quant_calib_samples=64,
                         quant_max_drop=0.3), "Quantize and measure")
    note = next(e.value for e in at.info if e.value.startswith("Mixed precision within 0.3 validation points"))
    assert "features.0: alone" in note and "(measured in onnxruntime)" in note
    at.selectbox(key="quant_mode").set_value("fake").run()
    assert at.number_input(key="quant_max_drop").disabled  # int8-static only


def test_quantization_bad_settings_are_one_line_errors():
    at = open_page("app_pages/quantization.py", quant_mode="int8-dynamic", quant_qat_epochs=2)
    assert "QAT applies to int8-static and fake" in at.error[0].value
    assert next(b for b in at.button if b.label == "Quantize and measure").disabled


def test_pruning_refuses_a_ratio_that_empties_a_layer_before_running():
    at = open_page("app_pages/pruning.py", prune_method="channel-l2", prune_ratio=0.6, prune_round_to=16)
    button = next(b for b in at.button if b.label == "Prune and measure")
    if not button.disabled:
        button.click().run(timeout=RUN_TIMEOUT)
    assert not at.exception
    assert "would empty layer 'features.0'" in at.error[0].value


def test_pruning_offers_round_to_auto():
    at = open_page("app_pages/pruning.py", prune_method="channel-l2", prune_round_to=ROUND_TO_AUTO)
    box = at.selectbox(key="prune_round_to")
    assert not at.exception
    assert box.options[-1] == "auto" and box.value == ROUND_TO_AUTO


@pytest.mark.slow
def test_distillation_run_compares_student_control_and_teacher():
    at = click(open_page("app_pages/distillation.py", distill_epochs=2, distill_width=0.25, distill_temperature=4.0),
               "Distil and measure")
    shown = metrics(at)
    assert list(shown) == LABELS
    assert float(shown["Size"].value.rstrip("×")) < 0.3  # a quarter-width student
    assert any("student at 0.25× width, T = 4" in s.value for s in at.subheader)
    assert any("gain over the label-only control" in m.value for m in at.markdown)
    assert "Soft targets at T = 4: the teacher's, and the KD student's" in [s.value for s in at.subheader]  # live
    assert at.number_input(key="distill_sample").value == 0  # shown only once the teacher is loaded

    spread_at_4 = dark_knowledge(at)
    at.slider(key="distill_temperature").set_value(12.0).run()  # the soft targets redraw; no run
    assert not at.exception and "Soft targets at T = 12: the teacher's" in [s.value for s in at.subheader]
    assert dark_knowledge(at) > spread_at_4  # a higher temperature spreads more probability off the top class


def dark_knowledge(at: AppTest) -> float:
    """The share of probability off the top class at the slider's T, as the Distillation page's caption
    states it (percent)."""
    caption = next(c.value for c in at.caption if "The classes other than the top one hold" in c.value)
    return float(re.search(r"hold ([0-9.]+)% of the probability", caption).group(1))


@pytest.mark.parametrize("page, key, value", [("app_pages/pruning.py", "prune_ratio", 0.3),
                                              ("app_pages/quantization.py", "quant_qat_epochs", 2),  # int8-static: bits fixed
                                              ("app_pages/distillation.py", "distill_temperature", 9.0)])
def test_a_pages_settings_survive_a_visit_to_another_page(page, key, value):
    at = open_page(page)
    widget = next(w for w in at.main.slider if w.key == key)
    assert widget.value != value
    widget.set_value(value).run()
    at.switch_page("app_pages/tradeoffs.py").run()
    assert key not in {w.key for w in at.main.slider}
    at.switch_page(page).run()
    assert not at.exception
    assert next(w for w in at.main.slider if w.key == key).value == value
