"""The app through Streamlit's AppTest: the baseline page trains, shows measured figures, then serves them.

AppTest drops sidebar elements from its tree after a rerun when the app uses st.navigation, so the
sidebar's choices are set through session_state (the keys its widgets use); tests/e2e drives the real
widgets in Chromium."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def start(**choices) -> AppTest:
    """A new session of the app with the sidebar's `choices` (widget key -> value), run once."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in choices.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception
    return at


def test_sidebar_offers_data_sets_models_seed_and_epochs():
    at = start()
    assert {w.key for w in at.sidebar.selectbox} == {"dataset_choice", "model"}
    assert {w.key for w in at.sidebar.number_input} == {"seed", "epochs"}
    assert "digits" in at.sidebar.selectbox(key="dataset_choice").options


@pytest.mark.slow
def test_baseline_page_trains_once_then_serves_from_the_store():
    at = start(epochs=6)
    assert at.button[0].label == "Train and measure baseline"
    assert "6 epochs" in at.info[0].value
    at.button[0].click().run(timeout=240)
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Test accuracy"].rstrip("%")) > 90
    assert metrics["Latency p50 · batch 32"].endswith(" ms")

    again = start(epochs=6)  # a new session: the result comes from the store, no button
    assert not again.button and {m.label: m.value for m in again.metric} == metrics


def test_missing_dataset_is_a_clear_error_not_a_traceback():
    at = start(dataset_choice="mnist")
    at.button[0].click().run(timeout=60)
    assert not at.exception
    assert "mnist: files not found" in at.error[0].value


def test_image_folder_path_that_does_not_exist_is_a_clear_error(tmp_path):
    at = start(dataset_choice="image folder…", imagefolder_path=str(tmp_path / "nowhere"))
    assert "does not exist" in at.error[0].value and not at.button


@pytest.mark.slow
def test_pruning_page_prunes_and_compares_with_the_baseline():
    at = start(epochs=6)
    at.switch_page("pages/pruning.py").run()
    assert not at.exception and at.button[0].label == "Prune and measure"
    at.selectbox(key="prune_method").set_value("channel-l2")
    at.slider(key="prune_ratio").set_value(0.5)
    at.slider(key="prune_finetune").set_value(2)
    at.button[0].click().run(timeout=300)
    assert not at.exception and not at.error
    metrics = {m.label: m for m in at.metric}
    assert float(metrics["FLOPs"].value.rstrip("×")) < 0.35
    assert "pts vs baseline" in metrics["Test accuracy"].delta
    assert "channel-l2 at 50%, 1 round(s)" in [s.value for s in at.subheader]
    assert len(at.get("plotly_chart")) == 2  # the curves of every stored pruning of this baseline


def test_pruning_page_refuses_round_to_that_empties_a_layer():
    at = start(epochs=1, model="mobilenet")
    at.switch_page("pages/pruning.py").run()
    at.selectbox(key="prune_method").set_value("channel-l2")
    at.slider(key="prune_ratio").set_value(0.1)
    at.selectbox(key="prune_round_to").set_value(16)
    at.button[0].click().run(timeout=60)
    assert not at.exception
    assert "would empty layer" in at.error[0].value
