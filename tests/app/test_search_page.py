"""The Search page under Streamlit's AppTest: it renders with the CLI's defaults, its study's name and the same
search as a command line (which the CLI parses into the very request the page runs); a bad space or no cost is
one error line and no Search; a real 3-trial search runs as a background job, stores its trials and draws its
frontier (chart, table, hypervolume); a frontier point opens on the Pipeline page as that recipe, and a recipe
the Pipeline's widgets cannot show is refused in one line rather than opened as another.

The workspace's baseline (2 epochs) is measured once and copied into each test's store, so the sidebar starts
no training job; widgets are set through session_state (their keys), as in tests/app/test_sweep.py."""

import json
import os
import re
import shlex
import shutil
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from streamlit.testing.v1 import AppTest

from compression import commands, describe, pipeline, search
from compression.__main__ import build_parser
from compression.errors import CompressionError
from compression.recipe import DistillSpec, PruneSpec, QuantSpec, Recipe
from compression.store import Store
from ui import forms

APP = str(Path(__file__).resolve().parents[2] / "app.py")
BASE = Recipe(epochs=2)
# seconds a trial: one round, at most one fine-tune epoch, no QAT; channel rounding the Pipeline page offers
CHEAP = {"ranges": {"prune.finetune_epochs": [0, 1], "prune.steps": [1, 1], "quant.qat_epochs": [0, 0],
                    "prune.round_to": [1, 8]}}
SMALL = {"search_trials": 3, "search_workers": 2, "search_stages": ["prune", "quant"],
         "search_space": json.dumps(CHEAP)}


@pytest.fixture(scope="module")
def measured_baseline(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("baseline")
    pipeline.run(BASE, Store(root))
    return root


@pytest.fixture(autouse=True)
def stored_baseline(measured_baseline, home, monkeypatch) -> None:
    """This test's COMPRESSION_HOME starts with the measured baseline; the machine has two CPUs (the page's
    worker count goes up to the CPU count)."""
    shutil.copytree(measured_baseline, home, dirs_exist_ok=True)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)


def search_page(**state) -> AppTest:
    """A new session on the Search page with the sidebar at 2 epochs and the page's widgets set by `state`."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in {"epochs": BASE.epochs, **state}.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("app_pages/search.py").run()
    assert not at.exception
    return at


def search_button(at: AppTest):
    return next(b for b in at.button if b.label == "Search")


def test_the_page_renders_with_the_clis_defaults_its_study_and_its_command_line():
    at = search_page()
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "Search"
    assert not search_button(at).disabled
    assert any(re.fullmatch(r"Study \*\*digits-cnn-accuracy-size-[0-9a-f]{8}\*\* · 24 trial\(s\) · 2 at once",
                            m.value) for m in at.markdown), [m.value for m in at.markdown]
    assert [c.value for c in at.code] == ["python -m compression search --dataset digits --model cnn --epochs 2 "
                                          "--seed 0 --objectives accuracy,size --trials 24 --sampler tpe --workers 2"]
    assert at.multiselect(key="search_costs").value == ["size"]
    assert at.multiselect(key="search_stages").value == ["distill", "prune", "quant"]
    assert at.number_input(key="search_max_drop").value is None  # no constraint unless one is given


def test_the_command_line_is_the_search_the_page_runs(monkeypatch):
    at = search_page(**SMALL, search_costs=["latency", "size"], search_sampler="nsga2", search_max_drop=0.0,
                     search_max_kb=40.0, search_study="my study")
    command = shlex.split(at.code[0].value)
    assert command[:4] == ["python", "-m", "compression", "search"]
    asked = {}
    monkeypatch.setattr(search, "run", lambda request, store, workers, progress, **executor: asked.update(
        request=request, workers=workers, executor=executor) or search.SearchReport("", "", [], 0, 0, 0, 0, {}, [], []))
    commands.search_command(build_parser().parse_args(command[3:]))
    expected = search.SearchRequest(BASE, ("accuracy", "latency", "size"), 3, search.Limits(0.0, 40.0, None),
                                    "nsga2", "my study", None,
                                    search.Space.from_dict({"stages": ["prune", "quant"], **CHEAP}), 0)
    request = asked["request"]
    assert request.setup() == expected.setup()  # baseline, objectives, limits and space
    assert (request.study_name, request.trials, request.sampler, request.seed, asked["workers"]) == (
        "my study", 3, "nsga2", 0, 2)
    assert not any(asked["executor"].values())  # the local executor (the job queue), as on the page
    assert "Study **my study** · 3 trial(s) · 2 at once" in [m.value for m in at.markdown]


@pytest.mark.parametrize("widgets, message", [
    (dict(search_space="{nope"), "search space is not valid JSON: Expecting property name"),
    (dict(search_space='{"ranges": {"prune.ratio": [0.5, 0.99]}}'), "must lie within [0.1, 0.9]"),
    (dict(search_space='{"ranges": {"prune.lam": [0, 1]}}'), "'prune.lam' is not a searched field"),
    (dict(search_space='{"stages": ["prune"]}'), "choose the stages with **Stages it may use**"),
    (dict(search_space="[1]"), "the narrowing is an object"),
    (dict(search_costs=[]), "Choose at least one of the **Costs to minimise**"),
    (dict(search_stages=[]), "Choose at least one of the **Stages**"),
])
def test_bad_settings_are_one_error_line_and_no_search(widgets, message):
    at = search_page(**widgets)
    assert len(at.error) == 1 and message in at.error[0].value, [e.value for e in at.error]
    assert "\n" not in at.error[0].value
    assert search_button(at).disabled
    assert not at.code  # no command line for a search that cannot run


PIPELINES = [
    replace(BASE, prune=PruneSpec("activation", 0.35, steps=2, finetune_epochs=1, lam=0.3),
            quant=QuantSpec("int8-static", granularity="per-tensor", calibration="entropy"),
            order=("quant", "prune", "distill")),
    replace(BASE, distill=DistillSpec(0.375, 2.5, 0.55, 20), prune=PruneSpec("channel-l2", 0.6, round_to=8, kd=True),
            quant=QuantSpec("fake", bits=4, activations=True, qat_epochs=2), order=("prune", "distill", "quant")),
    replace(BASE, quant=QuantSpec("int8-dynamic")),
]


@pytest.mark.parametrize("recipe", PIPELINES, ids=lambda r: r.technique)
def test_the_pipeline_page_filled_from_a_recipe_shows_that_recipe(recipe):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["epochs"] = BASE.epochs
    at.run()
    for key, value in forms.pipeline_state(recipe).items():
        at.session_state[key] = value
    at.switch_page(forms.PIPELINE_PAGE).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert f"**Recipe** — {describe.recipe(recipe)}" in [m.value for m in at.markdown]


@pytest.mark.parametrize("recipe, message", [
    (replace(BASE, prune=PruneSpec("channel-l2", 0.5, finetune_epochs=7)), "fine-tune epochs 0, 1, 2, 3, 5, 10"),
    (replace(BASE, prune=PruneSpec("channel-l2", 0.5, round_to=4)), "channel rounding 1, 8, 16, auto, not 4"),
    (replace(BASE, prune=PruneSpec("l1-unstructured", 0.5, steps=6)), "prune / fine-tune rounds 1 … 5, not 6"),
    (replace(BASE, distill=DistillSpec(epochs=37)), "student epochs 1, 2, 3, 5, 10, 20"),
    (BASE, "the baseline has no stages"),
])
def test_a_recipe_the_pipeline_widgets_cannot_show_is_refused_in_one_line(recipe, message):
    with pytest.raises(CompressionError) as caught:
        forms.pipeline_state(recipe)
    assert message in str(caught.value) and "\n" not in str(caught.value), caught.value


@pytest.mark.slow
def test_a_small_search_stores_its_trials_draws_its_frontier_and_opens_a_point_on_the_pipeline(home):
    at = search_page(**SMALL)
    search_button(at).click().run(timeout=900)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(s.value.startswith("Frontier of digits-cnn-accuracy-size-") for s in at.subheader)
    counts = {m.label: m.value for m in at.main.metric}
    assert counts["Trials"] == "3" and int(counts["Complete"]) + int(counts["Failed"]) == 3
    assert int(counts["On the frontier"]) >= 1 and float(counts["Hypervolume"]) > 0

    table = at.dataframe[0].value
    assert list(table.columns) == ["trial", "technique", "recipe", "validation accuracy", "test accuracy",
                                   "accuracy", "size (KB)", "latency (ms)", "MFLOPs", "hash"]
    assert json.loads(at.dataframe[0].proto.columns)["hash"] == {"hidden": True}  # the recipe in words shows
    assert len(table) == int(counts["On the frontier"]) and set(table["technique"]) <= {
        "prune", "quant", "prune+quant", "quant+prune"}
    assert (table["validation accuracy"] > 0.5).all() and (table["test accuracy"] > 0.5).all()
    assert list(table["size (KB)"]) == sorted(table["size (KB)"])  # the front in order of its first cost
    store = Store()
    assert all(store.get_result(h) is not None for h in table["hash"])
    storage = f"sqlite:///{home / search.STORAGE_FILE}"
    (name,) = optuna.get_all_study_names(storage)
    study = optuna.load_study(study_name=name, storage=storage)
    told = {t.user_attrs["recipe_hash"] for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert told and all(store.get_result(h) is not None for h in told)  # every trial's result is in the store

    charts = {chart.proto.id: json.loads(chart.proto.spec) for chart in at.get("plotly_chart")}
    titles = {key: spec["layout"].get("title", {}).get("text", "") for key, spec in charts.items()}
    [hypervolume] = [charts[key] for key, title in titles.items() if title.startswith("Hypervolume")]
    assert len(hypervolume["data"][0]["y"]) == 3  # one value after each finished trial
    rings = [t for s in charts.values() for t in s["data"] if t.get("name") == "search frontier"]
    assert sorted(rings[0]["text"]) == sorted(f"#{t}" for t in table["trial"])  # the frontier ringed, by trial

    point = table.iloc[-1]
    at.selectbox(key="search_point").set_value(int(point["trial"])).run()
    next(b for b in at.button if b.label == "Open on the Pipeline page").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.title[0].value == "Pipeline"
    stored = Store().get_result(point["hash"])
    assert f"**Recipe** — {describe.recipe(stored.recipe)}" in [m.value for m in at.markdown]
    assert "Final model vs the baseline" in [s.value for s in at.subheader]  # stored: shown, nothing to run


def test_every_recipe_the_default_space_proposes_opens_on_the_pipeline_page():
    from tests.backend.test_search import proposals

    for recipe in proposals(search.Space(), 300):
        forms.pipeline_state(recipe)  # a setting the Pipeline widgets cannot show would raise its one line
