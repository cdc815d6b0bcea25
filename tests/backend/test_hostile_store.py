"""A damaged or unlucky store: rows that are not JSON or not a Result, artifacts gone or garbage, a weights file
that is a malicious pickle, folders left by killed runs, a full disk, a read-only disk, many processes opening
a new store at once. Each is one clear line or a quarantine (the row kept with its reason, never dropped), and
`store check --repair` mends the rest; nothing is ever unpickled."""

import json
import os
import pickle
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compression import health
from compression.recipe import Recipe
from compression.store import Store, StoreError

from test_store_measure import make_result

ROOT = Path(__file__).resolve().parents[2]


def raw_row(store: Store, kind: str, key: str, payload: str) -> None:
    """Write a row as a damaged store would hold it, behind the store's back."""
    with sqlite3.connect(store.root / "results.sqlite") as db:
        db.execute("INSERT OR REPLACE INTO records VALUES (?, ?, '', '', ?, '2026-01-01')", (kind, key, payload))


def test_a_row_that_is_not_json_or_not_a_result_is_quarantined_not_dropped(tmp_path, caplog):
    store = Store(tmp_path)
    raw_row(store, "result", "aaa", "{not json")
    raw_row(store, "result", "bbb", json.dumps({"recipe_hash": "bbb", "accuracy": 0.5}))
    raw_row(store, "weights", "ccc", "[1, 2]")
    assert store.get_result("aaa") is None and store.results() == [] and store.get("weights", "ccc") is None
    reasons = {q["key"]: q["reason"] for q in store.quarantined()}
    assert reasons["aaa"].startswith("not valid JSON") and reasons["bbb"].startswith("not a valid Result (TypeError")
    assert reasons["ccc"] == "not a JSON object" and store.rows() == []
    assert sum("quarantined the" in r.message for r in caplog.records) == 3
    with sqlite3.connect(store.root / "results.sqlite") as db:  # the damaged text itself is kept
        assert {row[0] for row in db.execute("SELECT payload FROM quarantine")} >= {"{not json", "[1, 2]"}


def stored_with_artifact(store: Store, tmp_path: Path, content: bytes, recipe: Recipe = Recipe()):
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(content)
    return store.put_result(make_result(recipe), {"model.onnx": artifact})


def test_a_result_whose_artifact_is_gone_is_recomputed_and_the_old_row_kept_in_quarantine(tmp_path):
    store = Store(tmp_path / "store")
    first = stored_with_artifact(store, tmp_path, b"one")
    store.path(first, "model.onnx").unlink()
    second = stored_with_artifact(store, tmp_path, b"two")  # what a rerun of the recipe stores
    assert store.path(store.get_result(Recipe().hash), "model.onnx").read_bytes() == b"two"
    assert second.artifacts != first.artifacts
    [kept] = store.quarantined()
    assert kept["key"] == Recipe().hash and "is missing" in kept["reason"]


def test_store_check_finds_garbage_artifacts_and_repair_quarantines_them(tmp_path):
    store = Store(tmp_path / "store")
    stored_with_artifact(store, tmp_path, b"\x08\x01garbage, not a protobuf")
    marker = tmp_path / "pwned"

    class Payload:  # a weights file that would run code if it were unpickled
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    weights = tmp_path / "model.pt"
    weights.write_bytes(pickle.dumps(Payload()))
    store.put("weights", "w1", {"dataset": "digits", "model": "cnn"}, {"model.pt": weights})

    found = health.check(store.root)
    assert {p["kind"]: p["problem"].split(" (")[0] for p in found.problems} == {
        "result": "model.onnx does not load", "weights": "model.pt does not load"}
    assert not found.healthy and "2 damaged row(s) found" in found.summary() and not marker.exists()
    assert len(store.rows()) == 2  # a check alone changes nothing
    repaired = health.check(store.root, repair=True)
    assert repaired.quarantined == 2 and store.rows() == [] and not marker.exists()
    assert health.check(store.root).healthy


def test_folders_left_by_killed_runs_are_found_and_only_old_ones_removed(tmp_path):
    store = Store(tmp_path)
    kept = stored_with_artifact(store, tmp_path, b"named")
    old = time.time() - 7200
    staging = store.artifacts / ".tmp-abc-123"
    unnamed = store.artifacts / "deadbeef-123"
    dead_run = store.root / "work" / "999999999-abc"
    young = store.artifacts / "young-456"
    for folder in (staging, unnamed, dead_run, young):
        folder.mkdir(parents=True)
        (folder / "file").write_bytes(b"x")
    for folder in (staging, unnamed, dead_run):
        os.utime(folder, (old, old))
    with store.workdir() as mine:  # this process's own work folder is alive: never an orphan
        assert mine not in store.orphans(0.0)
        assert set(store.orphans(0.0)) == {staging, unnamed, dead_run, young}
        assert set(store.clean_orphans(3600)) == {staging, unnamed, dead_run}
    assert young.exists() and not mine.exists() and store.path(kept, "model.onnx").read_bytes() == b"named"


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KB tmpfs: a real full disk (needs the right to mount, which this project's machines give root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_nothing_half_stored(small_disk, tmp_path):
    store = Store(small_disk / "home")
    first = stored_with_artifact(store, tmp_path, b"small enough")
    big = Recipe(seed=1)
    with pytest.raises(StoreError) as failed:
        stored_with_artifact(store, tmp_path, os.urandom(512 * 1024), big)  # twice the disk
    message = str(failed.value)
    assert message.startswith("no space left on the device of") and "nothing was stored" in message
    assert "\n" not in message and store.get_result(big.hash) is None
    assert [p.name for p in store.artifacts.iterdir()] == [Path(first.artifacts["model.onnx"]).parent.name]
    assert store.get_result(first.recipe_hash) is not None  # what was stored before is unchanged


def test_a_read_only_home_is_one_line(small_disk):
    Store(small_disk / "home")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    done = subprocess.run([sys.executable, "-m", "compression", "baseline", "--epochs", "1"], cwd=ROOT,
                          env={**os.environ, "COMPRESSION_HOME": str(small_disk / "other")}, capture_output=True,
                          text=True, timeout=120)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1 and "is not writable" in err[0] and "Traceback" not in err[0]


def test_many_processes_opening_a_new_store_at_once_all_succeed_with_one_row(tmp_path):
    code = "import sys; from compression.store import Store; print(Store(sys.argv[1]).put('x', 'k', {'a': 1}))"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "new")], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(6)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err for _, err in outs]
    assert len(Store(tmp_path / "new").rows()) == 1


@pytest.mark.slow
def test_a_garbage_baseline_file_or_weights_heal_by_being_measured_again(tmp_path):
    from compression import pipeline
    from compression.recipe import PruneSpec

    store = Store(tmp_path / "store")
    base = pipeline.run(Recipe(epochs=2), store)
    store.path(base, "model.onnx").write_bytes(b"not an onnx file")
    pruned = pipeline.run(Recipe(epochs=2, prune=PruneSpec("l1-unstructured", 0.3, finetune_epochs=0)), store)
    assert pruned.speedup_vs_baseline > 0  # timed beside a baseline file that runs
    assert [q["reason"] for q in store.quarantined()] == ["model.onnx does not load in onnxruntime (InvalidProtobuf)"]
    assert store.get_result(base.recipe_hash).artifacts != base.artifacts  # measured again, stored anew

    weights = store.root / store.get("weights", Recipe(epochs=2).training_key)["artifacts"]["model.pt"]
    weights.write_bytes(b"garbage")
    again = pipeline.run(Recipe(epochs=2, prune=PruneSpec("l1-unstructured", 0.4, finetune_epochs=0)), store)
    assert again.accuracy > 0.3 and store.quarantined()[-1]["reason"].startswith("weights do not load")
    assert store.get("weights", Recipe(epochs=2).training_key) is not None  # trained again and stored
