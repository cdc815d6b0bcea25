"""The Sweep page under Streamlit's AppTest: a 2-recipe grid built with the widgets runs on worker processes,
lands in the store and on the chart and table; a second session finds it stored and offers nothing to run.

Sidebar choices are set through session_state, as in tests/test_app.py. The workspace's baseline is stored
first (as in tests/test_app.py), so the sidebar starts no training job that would outlive a test."""

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from compression import pipeline
from compression.recipe import Recipe
from compression.store import Store

APP = str(Path(__file__).resolve().parents[1] / "app.py")
BASE = Recipe(epochs=3)
GRID = {"sweep_methods": ["channel-l2"], "sweep_ratios": [0.5], "sweep_unpruned": False, "sweep_finetune": 1,
        "sweep_quant": ["none", "int8-static"], "sweep_temperatures": []}


@pytest.fixture(scope="module")
def measured_baseline(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("baseline")
    pipeline.run(BASE, Store(root))
    return root


@pytest.fixture(autouse=True)
def stored_baseline(measured_baseline, home) -> None:
    """This test's COMPRESSION_HOME starts with the measured baseline."""
    shutil.copytree(measured_baseline, home, dirs_exist_ok=True)


def sweep_page(**state) -> AppTest:
    """A new session on the Sweep page with the sidebar at 3 epochs and the grid's widgets set by `state`."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in {"epochs": BASE.epochs, **state}.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("app_pages/sweep.py").run()
    assert not at.exception
    return at


@pytest.mark.slow
def test_sweep_page_runs_a_two_recipe_grid_then_serves_it_from_the_store():
    at = sweep_page(**GRID)
    assert "**2 recipe(s)** · 0 already stored · 2 to compute" in [m.value for m in at.markdown]
    run = next(b for b in at.button if b.label == "Run sweep")
    run.click().run(timeout=400)
    assert not at.exception and not at.error
    assert "Results of this grid (2 of 2)" in [s.value for s in at.subheader]
    table = at.dataframe[0].value
    assert sorted(table["technique"]) == ["prune", "prune+quant"]
    assert (table["test accuracy"] > 0.5).all()

    again = sweep_page(**GRID)
    assert "**2 recipe(s)** · 2 already stored · 0 to compute" in [m.value for m in again.markdown]
    assert next(b for b in again.button if b.label == "Run sweep").disabled


def test_sweep_page_names_a_bad_grid_and_offers_no_run():
    at = sweep_page(**{**GRID, "sweep_ratios": []})
    assert "prune.ratio" in at.error[0].value
    assert not [b for b in at.button if b.label == "Run sweep"]
