"""Multi-objective search (compression/search.py): the space proposes only valid recipes within what the user
narrowed it to; the hypervolume is Optuna's on hand-computed points; bad settings are one line (exit 2 on the
CLI); a real search on digits stores its trials, a driver killed mid-search resumes without recomputing, a
larger --trials adds only the difference, and constraints no recipe meets stop the search with one line."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from compression import search
from compression.catalog import STAGES
from compression.errors import CompressionError
from compression.recipe import Recipe
from compression.store import Store
from tests.backend.running_jobs import attempts, kill_a_job

ROOT = Path(__file__).resolve().parents[2]
CHEAP = {"stages": ["prune", "quant"],
         "ranges": {"prune.method": ["channel-l2", "l1-unstructured"], "prune.finetune_epochs": [0, 1],
                    "prune.steps": [1, 1], "quant.qat_epochs": [0, 0]}}


def proposals(space: search.Space, count: int = 200) -> list[Recipe]:
    """The recipes `count` random trials of an in-memory study propose over the digits baseline."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    recipes = []
    for _ in range(count):
        trial = study.ask()
        recipes.append(space.suggest(trial, Recipe(epochs=2)))
        study.tell(trial, [0.0, 0.0])
    return recipes


def test_the_default_space_proposes_valid_recipes_of_every_stage_order_and_deployable_formats():
    recipes = proposals(search.Space())
    for recipe in recipes:
        recipe.validate()
        assert recipe.stages and (recipe.dataset, recipe.model, recipe.epochs) == ("digits", "cnn", 2)
    assert {len(r.stages) for r in recipes} == {1, 2, 3}
    assert len({r.stages for r in recipes}) == len(search.pipelines(STAGES)) == 15  # every subset, every order
    modes = {r.quant.mode for r in recipes if r.quant}
    assert modes == {"fp16", "int8-static", "int8-dynamic"}  # formats a user can ship; no simulated widths
    assert {r.prune.round_to for r in recipes if r.prune and not r.prune.structured} == {1}  # round-to: channels only
    assert any(r.quant and r.quant.qat_epochs for r in recipes)
    assert all(0.1 <= r.prune.ratio <= 0.9 and round(r.prune.ratio, 2) == r.prune.ratio for r in recipes if r.prune)


def test_a_narrowed_space_keeps_to_its_stages_ranges_and_fixed_fields():
    space = search.Space.from_dict({"stages": ["prune", "quant"], "fixed": {"prune.method": "channel-l2"},
                                    "ranges": {"prune.ratio": [0.5, 0.7], "quant.mode": ["int8-static", "fake"]}})
    recipes = proposals(space, 120)
    assert all(r.distill is None and r.stages for r in recipes)
    assert {r.prune.method for r in recipes if r.prune} == {"channel-l2"}
    assert all(0.5 <= r.prune.ratio <= 0.7 for r in recipes if r.prune)
    assert {r.quant.mode for r in recipes if r.quant} == {"int8-static", "fake"}  # fake only when asked for
    assert {r.quant.bits for r in recipes if r.quant and r.quant.mode == "fake"} > {8}
    ordered = search.Space.from_dict({"fixed": {"order": "quant,prune"}})
    assert {r.stages for r in proposals(ordered, 20)} == {("quant", "prune")}


@pytest.mark.parametrize("space, message", [
    ([], "a search space is an object"),
    ({"grid": {}}, "unknown search space key 'grid'"),
    ({"stages": ["prune", "shrink"]}, "search stages must be a non-empty list"),
    ({"ranges": {"prune.ratio": [0.5, 0.99]}}, r"must lie within \[0.1, 0.9\]"),
    ({"ranges": {"prune.ratio": [0.7, 0.5]}}, "with low <= high"),
    ({"ranges": {"quant.mode": ["int4"]}}, '"int4" is not one of'),
    ({"ranges": {"prune.lam": [0, 1]}}, "'prune.lam' is not a searched field"),
    ({"fixed": {"prune.ratio": "half"}}, "must be a number"),
    ({"stages": ["quant"], "fixed": {"order": "prune,quant"}}, "uses a stage the space leaves out"),
])
def test_a_bad_space_is_one_line(space, message):
    with pytest.raises(CompressionError, match=message) as caught:
        search.Space.from_dict(space)
    assert "\n" not in str(caught.value)


def test_hypervolume_is_the_area_the_front_dominates_against_the_baseline():
    # costs normalised to the baseline's 100: (0.9, 0.5) and (0.8, 0.25) dominate 0.9*0.5 + 0.8*0.25 - overlap
    # 0.8*0.25 counted once: area = 0.9*(1-0.5) + 0.8*(0.5-0.25) = 0.45 + 0.2
    assert search.hypervolume([[0.9, 50.0], [0.8, 25.0]], [0.95, 100.0]) == pytest.approx(0.65)
    assert search.hypervolume([[0.99, 100.0], [0.5, 150.0]], [0.95, 100.0]) == 0.0  # no cost reduction: none


@pytest.mark.parametrize("change, message", [
    (dict(objectives=("accuracy", "speed")), "unknown objective 'speed'"),
    (dict(objectives=("size",)), "objectives are accuracy, then one or more"),
    (dict(objectives=("accuracy", "size", "size")), "objectives are accuracy, then"),
    (dict(trials=0), "trials must be within 1"),
    (dict(sampler="cmaes"), "unknown sampler 'cmaes'"),
    (dict(limits=search.Limits(max_kb=-1.0)), "--max-kb must be a non-negative number"),
])
def test_bad_search_settings_are_one_line(change, message):
    with pytest.raises(CompressionError, match=message):
        search.SearchRequest(Recipe(), **change).validate()


def cli(home: Path, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "compression", "search", "--epochs", "2", "--workers", "2",
                             "--space", json.dumps(CHEAP), *args], cwd=ROOT, text=True,
                            env={**os.environ, "COMPRESSION_HOME": str(home)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **popen)


def finish(process: subprocess.Popen) -> tuple[int, str, list[str]]:
    out, err = process.communicate(timeout=900)
    return process.returncode, out, [line for line in err.splitlines() if line.strip()]


def test_the_cli_refuses_bad_settings_with_exit_2(home):
    for args, message in ((("--objectives", "accuracy,speed"), "unknown objective 'speed'"),
                          (("--trials", "0"), "trials must be within 1"),
                          (("--space", "{nope"), "search space is not valid JSON")):
        code, out, err = finish(cli(home, *args))
        assert (code, out) == (2, "") and len(err) == 1 and message in err[0], err
    assert not (home / search.STORAGE_FILE).exists()  # nothing started


@pytest.mark.slow
def test_a_search_stores_its_trials_resumes_after_the_driver_is_killed_and_adds_only_new_trials(home):
    killed = cli(home, "--trials", "4", start_new_session=True)
    deadline = time.monotonic() + 600
    while not killed.stderr.readline().startswith("[search] 1/4"):  # one trial told, others in flight
        assert killed.poll() is None and time.monotonic() < deadline
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    time.sleep(1)
    stored_at_kill = {p["recipe_hash"] for p in Store(home).list("result")}

    code, out, err = finish(cli(home, "--trials", "4"))
    assert code == 0, err[-5:]
    report = json.loads(out)
    assert (report["trials"], report["complete"] + report["failed"]) == (4, 4)
    assert report["storage"] == f"sqlite:///{home / search.STORAGE_FILE}"
    study = optuna.load_study(study_name=report["study"], storage=report["storage"])
    hashes = {t.user_attrs["recipe_hash"] for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    stored = {p["recipe_hash"] for p in Store(home).list("result")}
    assert stored_at_kill <= stored and hashes <= stored
    assert len(stored) == len(hashes) + 1  # each trial's recipe once, and the baseline
    assert any("resumes" in t.user_attrs for t in study.trials)  # the trials in flight at the kill, asked again
    assert not any("measured" in line for line in err if any(h in line for h in stored_at_kill))

    front = report["frontier"]
    assert front and [p["values"][1] for p in front] == sorted(p["values"][1] for p in front)
    assert all(p["result"]["accuracy_source"] == "onnxruntime" for p in front)  # test accuracy beside val
    assert [p["values"][0] for p in front] == sorted(p["values"][0] for p in front)  # accuracy rises with size
    assert len(report["hypervolume"]) >= 4 and report["hypervolume"] == sorted(report["hypervolume"])

    code, out, err = finish(cli(home, "--trials", "5"))
    assert code == 0 and json.loads(out)["trials"] == 5
    assert len([line for line in err if line.startswith("[search] 5/5")]) == 1  # one new trial, not five
    stored = search.report(search.SearchRequest(Recipe(epochs=2), trials=5, space=search.Space.from_dict(CHEAP)))
    assert json.loads(json.dumps(stored.to_dict())) == json.loads(out)  # the same study, read without asking a trial
    assert Store(home).get_result(Recipe(epochs=2).hash) is not None


@pytest.mark.slow
def test_constraints_no_recipe_meets_stop_the_search_with_one_line(home):
    space = {"stages": ["quant"], "ranges": {"quant.mode": ["fp16", "int8-dynamic"]}}
    code, out, err = finish(cli(home, "--trials", "30", "--max-kb", "0.5", "--space", json.dumps(space)))
    assert (code, out) == (2, "")
    assert err[-1].startswith("error: no recipe met --max-kb 0.5 in 8 trial(s)"), err[-3:]


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_retried_once_and_the_search_finishes(home):
    driver = cli(home, "--trials", "3", "--workers", "1")
    lines = []
    while not (lines := [*lines, driver.stderr.readline()])[-1].startswith("[search] 1/3"):
        assert driver.poll() is None, lines
    key, _ = kill_a_job(home)  # the second trial's job, computing on the one worker slot
    code, out, err = finish(driver)
    assert code == 0, err[-5:]
    assert attempts(home, key) == ("done", 2)  # asked once more, then measured
    report = json.loads(out)
    assert (report["trials"], report["complete"]) == (3, 3) and "Traceback" not in "\n".join(err)
