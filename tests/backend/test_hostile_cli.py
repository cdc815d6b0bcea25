"""Hostile and unlucky input to the CLI: every probe gets one line on stderr, the right exit code, no traceback,
and leaves the store as it was. Most probes call the real `main` in this process (it is what
`python -m compression` runs); the ones about processes — two running the same recipe at once, Ctrl-C on a
sweep — start real processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compression import __main__ as cli_main
from compression.catalog import max_threads
from compression.jobs import JobQueue
from compression.recipe import PruneSpec, Recipe
from compression.store import Store

ROOT = Path(__file__).resolve().parents[2]


def cli(capsys, *args: str) -> tuple[int, str, list[str]]:
    """(exit code, stdout, stderr lines) of `python -m compression ARGS`, run in this process."""
    try:
        code = cli_main.main(list(args))
    except SystemExit as exc:  # argparse's refusals exit through SystemExit
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()]


def refused(capsys, *args: str, match: str, code: int = 2) -> str:
    """Assert the command is refused with exit `code` and exactly one stderr line containing `match`."""
    got, out, err = cli(capsys, *args)
    assert (got, len(err)) == (code, 1), (got, err)
    assert match in err[0] and "Traceback" not in err[0] and not out, err[0]
    return err[0]


@pytest.mark.parametrize("args, match", [
    (("baseline", "--seed", "-1"), "seed must be within 0 … 4,294,967,295"),
    (("baseline", "--seed", str(2**32)), "seed must be within"),
    (("baseline", "--threads", str(max_threads() + 1)), "threads (4 per core of this machine) must be at most"),
    (("baseline", "--batch", "0"), "latency batch must be at least 1"),
    (("baseline", "--batch", "100000"), "latency batch must be at most 4,096"),
    (("baseline", "--epochs", "1000000"), "epochs must be at most 10,000"),
    (("baseline", "--seed", "1.5"), "invalid int value"),
    (("run", "--prune-ratio", "nan"), "must be a finite number"),
    (("run", "--prune-lambda", "inf"), "must be a finite number"),
    (("run", "--distill-temperature=-inf"), "must be a finite number"),
    (("run", "--prune-method", "channel-l2", "--prune-steps", "1000"), "prune steps must be at most 100"),
    (("run", "--prune-method", "channel-l2", "--finetune-epochs", "99999"), "fine-tune epochs must be at most"),
    (("run", "--prune-method", "channel-l2", "--prune-round-to", "100000"), "round-to must be at most 1,024"),
    (("run", "--quant", "int8-static", "--calib-samples", "10000000"), "calibration samples must be at most"),
    (("run", "--quant", "fake", "--qat-epochs", "1000000"), "QAT epochs must be at most"),
    (("run", "--distill-epochs", "1000000"), "distill epochs must be at most"),
    (("pareto", "--max-kb", "nan"), "must be a finite number"),
    (("pareto", "--within-points", "inf"), "must be a finite number"),
    (("store",), "the following arguments are required: action"),
    (("store", "mend"), "invalid choice: 'mend'"),
])
def test_out_of_range_and_non_finite_arguments_are_one_line_before_any_work(capsys, home, args, match):
    refused(capsys, *args, match=match)
    assert not (home / "artifacts").exists() or not any((home / "artifacts").iterdir())  # nothing computed


def grid(path: Path, text: str | bytes) -> str:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


# `python -m compression ARGS` in a fresh interpreter: the exit code, then whether torch was ever imported
WITHOUT_TORCH = ("import sys; from compression.__main__ import main; code = main(sys.argv[1:]); "
                 "print('torch' in sys.modules); sys.exit(code)")


def test_image_folders_the_cli_cannot_use_are_refused_before_torch_loads(home, tmp_path):
    loop = tmp_path / "loop"
    (loop / "a").mkdir(parents=True)
    (loop / "a" / "back").symlink_to(loop, target_is_directory=True)
    for folder, match in (("/proc", "imagefolder: "),  # a folder it may not list, or the entry cap: by machine
                          (loop, f"imagefolder: no images found in the class folders of {loop}")):
        done = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, "run", "--dataset", f"imagefolder:{folder}"],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout) == (2, "False\n"), (done.stdout, done.stderr)
        assert done.stderr.startswith(f"error: {match}") and done.stderr.count("\n") == 1, done.stderr
    assert not list(home.glob("artifacts/*"))


def test_grid_documents_that_are_not_grids_are_one_line(capsys, tmp_path):
    cases = [
        ("[]", "a grid is an object"),
        (str(tmp_path), "is a folder: give a JSON file"),
        (str(tmp_path / "missing.json"), "not found"),
        (grid(tmp_path / "latin1.json", b'{"grid": {"seed": [1]}, "note": "caf\xe9"}'), "is not UTF-8 text"),
        (grid(tmp_path / "deep.json", "[" * 100_000 + "]" * 100_000), "nested too deeply"),
        (grid(tmp_path / "big.json", '{"grid": {"seed": [' + "1," * 600_000 + "1]}}"), "larger than 1,000,000 bytes"),
        ('{"grid": {"prune.method": ["channel-l2"], "prune.ratio": [NaN]}}', "prune ratio must be within 0 … 0.95"),
        ('{"grid": {"seed": [-5]}}', "seed must be within"),
        (json.dumps({"grid": {"seed": list(range(100)), "epochs": list(range(1, 101))}}),
         "the grid makes 10,000 combinations: a sweep takes at most 5,000"),
    ]
    for document, match in cases:
        refused(capsys, "sweep", "--grid", document, match=match)


def test_a_grid_on_stdin_that_is_not_utf8_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "compression", "sweep", "--grid", "-"], cwd=ROOT, input=b"\xff\xfe{",
                          capture_output=True, timeout=120, env={**os.environ, "COMPRESSION_HOME": str(tmp_path)})
    err = done.stderr.decode().strip().splitlines()
    assert done.returncode == 2 and len(err) == 1 and "stdin is not UTF-8 text" in err[0], err


def test_report_out_must_be_a_writable_file(capsys, home, tmp_path):
    refused(capsys, "report", "--out", str(tmp_path), match="is a folder: give a file name")
    refused(capsys, "report", "--out", "", match="is a folder: give a file name")
    refused(capsys, "report", "--out", str(tmp_path / "no" / "such" / "r.html"), match="does not exist")


def test_a_home_that_is_a_file_is_one_line(capsys, tmp_path, monkeypatch):
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    monkeypatch.setenv("COMPRESSION_HOME", str(home))
    refused(capsys, "baseline", "--epochs", "1", match="is not a folder: point COMPRESSION_HOME at a folder")
    refused(capsys, "store", "check", match="is not a folder")
    assert home.read_text() == "not a folder"


def test_a_damaged_database_is_one_line_and_store_check_repairs_it(capsys, home):
    Store(home)
    (home / "results.sqlite").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (home / f"results.sqlite{suffix}").unlink(missing_ok=True)
    line = refused(capsys, "pareto", match="is damaged")
    assert "store check --repair" in line
    code, out, err = cli(capsys, "store", "check")
    assert code == 1 and json.loads(out)["database"] == "damaged" and len(err) == 1
    code, out, err = cli(capsys, "store", "check", "--repair")
    assert code == 0 and json.loads(out)["database"].startswith("damaged: set aside as results.sqlite.damaged-")
    assert list(home.glob("results.sqlite.damaged-*")) and Store(home).rows() == []  # kept aside; a new one works
    code, out, err = cli(capsys, "store", "check")
    assert code == 0 and "healthy" in err[0]


def test_the_last_resort_is_one_line_and_a_log_with_the_traceback(capsys, home, monkeypatch):
    def bug(*_):
        raise KeyError("a bug nobody foresaw")
    monkeypatch.setattr(cli_main, "execute", bug)
    line = refused(capsys, "baseline", match="error: unexpected KeyError: 'a bug nobody foresaw'", code=1)
    log = Path(line.rsplit("(traceback in ", 1)[1].rstrip(")"))
    assert log.parent == home / "logs" and "Traceback (most recent call last)" in log.read_text()


def run_cli(home: Path, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "compression", *args], cwd=ROOT, text=True,
                            env={**os.environ, "COMPRESSION_HOME": str(home)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **popen)


@pytest.mark.slow
def test_two_processes_running_the_same_recipe_at_once_both_succeed_with_one_stored_result(home):
    """Both train the baseline, both store it, both time against it: the second write keeps the first's row,
    and no artifact folder is deleted under the other process."""
    args = ("run", "--epochs", "2", "--prune-method", "l1-unstructured", "--prune-ratio", "0.3",
            "--finetune-epochs", "0", "--json")
    first, second = run_cli(home, *args), run_cli(home, *args)
    outputs = [p.communicate(timeout=600) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], [err[-2000:] for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]
    recipe = Recipe(epochs=2, prune=PruneSpec("l1-unstructured", 0.3, finetune_epochs=0))
    assert {r["recipe_hash"] for r in results} == {recipe.hash}
    stored = Store(home)
    assert [p["recipe_hash"] for p in stored.list("result")] == [recipe.baseline().hash, recipe.hash]
    assert all((home / rel).is_file() for p in stored.list("result") for rel in p["artifacts"].values())
    assert stored.quarantined() == []


@pytest.mark.slow
def test_ctrl_c_on_a_sweep_says_truthfully_what_was_stored_and_no_worker_prints_a_traceback(home, tmp_path):
    grid_file = grid(tmp_path / "grid.json", json.dumps({"base": {"epochs": 2}, "grid": {
        "prune.method": ["l1-unstructured"], "prune.ratio": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        "prune.finetune_epochs": [40]}}))
    sweep = run_cli(home, "sweep", "--grid", grid_file, "--workers", "2", start_new_session=True)
    deadline = time.monotonic() + 300
    while not Store(home).list("result", "digits") or len(Store(home).list("result")) < 2:  # the baseline, then one
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.stderr.read()
        time.sleep(0.5)
    os.killpg(sweep.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 130 and "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    stored = len([p for p in Store(home).list("result") if p["recipe"]["prune"]])
    assert last == f"interrupted: {stored} of 6 results are stored; run the same sweep again to finish the rest", last
    assert 1 <= stored < 6 and len(out.strip().splitlines()) <= stored
    assert JobQueue(Store(home)).active() == []  # its jobs were cancelled, not left for the next worker
