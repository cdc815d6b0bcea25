"""The Sweep page under Streamlit's AppTest: a 2-recipe grid built with the widgets runs as jobs on the
executor's workers, lands in the store and on the chart and table; a second session finds it stored and offers
nothing to run. The grid's settings survive a visit to another page; a grid the widgets leave incomplete is
named in the widgets' words; a failed recipe ends the sweep with one line.

Sidebar choices are set through session_state, as in tests/app/test_pages.py. The workspace's baseline is stored
first (as in tests/app/test_pages.py), so the sidebar starts no training job that would outlive a test."""

import json
import multiprocessing
import shutil
import sys
import threading
import types
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from compression import pipeline
from compression.recipe import Recipe
from compression.store import Store

APP = str(Path(__file__).resolve().parents[2] / "app.py")
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
    assert {b.proto.label for b in at.get("download_button")} == {"Download table (CSV)", "Download HTML report"}

    again = sweep_page(**GRID)
    assert "**2 recipe(s)** · 2 already stored · 0 to compute" in [m.value for m in again.markdown]
    assert next(b for b in again.button if b.label == "Run sweep").disabled


def test_sweep_page_names_a_missing_fraction_in_its_own_words_and_offers_no_run():
    at = sweep_page(**{**GRID, "sweep_ratios": []})
    assert [e.value for e in at.error] == ["Choose at least one of the **Fractions removed**, or no pruning method."]
    assert not [b for b in at.button if b.label == "Run sweep"]


def test_sweep_settings_survive_a_visit_to_another_page():
    at = sweep_page()
    assert "**8 recipe(s)**" in recipe_count(at)
    at.multiselect(key="sweep_ratios").set_value([0.3])
    at.number_input(key="sweep_finetune").set_value(1).run()
    assert "**4 recipe(s)**" in recipe_count(at)
    at.switch_page("app_pages/overview.py").run()
    assert "sweep_finetune" not in {w.key for w in at.main.number_input}
    at.switch_page("app_pages/sweep.py").run()
    assert not at.exception
    assert "**4 recipe(s)**" in recipe_count(at)
    assert at.multiselect(key="sweep_ratios").value == [0.3]
    assert at.number_input(key="sweep_finetune").value == 1


def test_sweep_page_formats_its_table_and_names_flops_as_elsewhere():
    at = sweep_page(sweep_methods=[], sweep_quant=["none"], sweep_temperatures=[])  # the grid is the stored baseline
    assert "Results of this grid (1 of 1)" in [s.value for s in at.subheader]
    columns = json.loads(at.dataframe[0].proto.columns)  # st.dataframe's column_config, as sent to the browser
    formats = {name: column["type_config"]["format"] for name, column in columns.items()
               if "format" in column.get("type_config", {})}  # number columns (a text column has no format)
    assert formats["test accuracy"] == formats["zero weights"] == "percent"
    assert formats["vs baseline (pts)"] == "%+.2f" and formats["size (KB)"] == "%.1f"
    assert at.button_group[0].options == ["size", "latency", "FLOPs"]


def test_bits_are_disabled_unless_fake_is_a_chosen_format():
    at = sweep_page(**GRID)
    assert at.multiselect(key="sweep_bits").disabled
    at.multiselect(key="sweep_quant").set_value(["none", "fake"]).run()
    assert not at.multiselect(key="sweep_bits").disabled


def test_calibration_samples_are_asked_only_for_a_format_that_calibrates_and_reach_its_recipes():
    at = sweep_page(**{**GRID, "sweep_quant": ["none", "fp16"]})
    assert at.number_input(key="sweep_calib_samples").disabled
    at.multiselect(key="sweep_quant").set_value(["fp16", "int8-static"]).run()
    at.number_input(key="sweep_calib_samples").set_value(64).run()
    assert not at.number_input(key="sweep_calib_samples").disabled
    command = next(c.value for c in at.code if "--grid" in c.value)
    quants = json.loads(command.split("--grid '", 1)[1].rstrip("'"))["grid"]["quant"]
    assert quants == [{"mode": "fp16"}, {"mode": "int8-static", "calib_samples": 64}]


def worker_state() -> tuple[list[str], bool]:
    """A worker's threads, and whether it ran the app's main script (which Streamlit made __main__)."""
    return [t.name for t in threading.enumerate()], "__mp_main__" in sys.modules


def test_a_sweep_worker_process_does_not_run_the_app(monkeypatch):
    """Streamlit installs app.py as __main__, and a spawned worker re-runs __main__: the app must not run there
    (it trained the default workspace's baseline in a thread beside the worker's export, which then failed
    now and then: torch's export keeps its tracing state in a module global)."""
    script = types.ModuleType("__main__")
    script.__file__ = APP  # as Streamlit's script runner sets it
    monkeypatch.setitem(sys.modules, "__main__", script)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        threads, imported = pool.submit(worker_state).result()
    assert imported and threads == ["MainThread"]


def recipe_count(at: AppTest) -> str:
    """The page's line counting the grid's recipes."""
    return next(m.value for m in at.markdown if "recipe(s)**" in m.value)


def sweep_of_a_failing_recipe() -> None:
    """An AppTest script: a sweep of one stored recipe and one that cannot load its data, followed to its end."""
    from dataclasses import replace

    from compression.recipe import PruneSpec, Recipe
    from ui import progress

    good, bad = Recipe(epochs=3), Recipe(epochs=3, dataset="imagefolder:/no/such/folder")
    recipes = [good, replace(bad, prune=PruneSpec("channel-l2", 0.5))]
    progress.follow_sweep(progress.start_sweep(recipes), recipes, lambda results, box: box.write(len(results)),
                          "sweep_running")


def test_a_failed_recipe_ends_the_sweep_with_one_line():
    at = AppTest.from_string("from test_sweep import sweep_of_a_failing_recipe\n\nif __name__ == '__main__':\n"
                             "    sweep_of_a_failing_recipe()\n", default_timeout=120)
    at.run()
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert error.startswith("1 of 1 recipes failed; the first: ") and "\n" not in error
    assert "no/such/folder" in error or "imagefolder" in error
