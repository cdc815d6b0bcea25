"""The Classic experiments page under Streamlit's AppTest: without MNIST on disk it says which files to fetch and
where (one warning, no error, no run); with a tiny MNIST in the real IDX format, Run experiment queues the job, a
worker runs it for real, and the page shows ours beside the published figures, each labelled, with intervals, the
why-lines and which setting produced them; a new session (a reload) shows the stored result without running.

The workspace's baseline (2 epochs) is measured once and copied into each test's store, so the sidebar starts no
training job, as in tests/app/test_search_page.py."""

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from compression import classic, pipeline
from compression.recipe import Recipe
from compression.settings import data_dir
from compression.store import Store
from tests.backend.test_classic import MNIST_GZ, write_mnist

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGE = "app_pages/classic.py"
BASE = Recipe(epochs=2)


@pytest.fixture(scope="module")
def measured_baseline(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("baseline")
    pipeline.run(BASE, Store(root))
    return root


@pytest.fixture(autouse=True)
def stored_baseline(measured_baseline, home) -> None:
    shutil.copytree(measured_baseline, home, dirs_exist_ok=True)
    pipeline.load_splits.cache_clear()


def classic_page(timeout: float = 60, **state) -> AppTest:
    """A new session on the Classic experiments page, the sidebar at 2 epochs, the page's widgets set by `state`."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    for key, value in {"epochs": BASE.epochs, **state}.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def test_offline_the_page_says_which_files_to_fetch_and_where():
    at = classic_page()
    assert at.title[0].value == "Classic experiments"
    assert not at.error
    [warning] = at.warning
    assert str(data_dir() / "MNIST" / "raw") in warning.value
    assert all(name in warning.value for name in MNIST_GZ)
    assert at.button(key="classic_run").label == "Run experiment"
    assert not at.table  # nothing run yet


@pytest.mark.slow
def test_a_run_shows_ours_beside_the_published_figures_and_a_reload_shows_it_again():
    write_mnist(data_dir() / "MNIST" / "raw")
    at = classic_page(timeout=600, classic_experiment="deep-compression")
    assert not at.warning  # the data is there
    at.button(key="classic_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]

    table = at.table[0].value  # indexed by the quantity
    assert {"Published", "Ours", "Ours is", "95 % interval (our test accuracy)"} <= set(table.columns)
    sources = set(table["Ours is"])
    assert {"measured (onnxruntime)", "computed, not deployed", "published only"} <= sources
    kept = table.loc["Weights kept after pruning"]
    assert kept["Published"].startswith("8 %") and kept["Ours"].startswith("8.")
    assert table.loc["Baseline LeNet-300-100: test error", "95 % interval (our test accuracy)"]
    assert any("Why ours differ" in m.value and "computed, not deployed" in m.value for m in at.markdown)
    assert any("Produced by the **classroom** setting" in c.value and "The paper setting trains for about" in c.value
               for c in at.caption)
    assert classic.stored(classic.ClassicRequest("deep-compression"), Store()) is not None

    again = classic_page(classic_experiment="deep-compression")  # a reload: a new session, nothing run
    assert again.table[0].value.equals(table)
    assert "classic_run" not in {b.key for b in again.button}  # stored: nothing to run
    again.radio(key="classic_setting_deep-compression").set_value("paper").run()
    assert any("by the epoch times of the classroom run" in c.value for c in again.caption)
    assert again.button(key="classic_run")  # the paper setting is not run yet
