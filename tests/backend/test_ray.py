"""A search and a sweep on a real local Ray cluster (`ray start --head` on a free port and a second node joined with
`ray start --address`, both stopped after the test, even on failure): its trials and recipes run as Ray tasks, their results
land in the driver's store only, re-timed on the driver against its own baseline with the worker's CPU beside;
an address no cluster answers is one line within 10 s."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compression.recipe import Recipe
from compression.result import speedup
from compression.store import Store

from tests.backend.test_search import ROOT

QUANT_ONLY = {"stages": ["quant"], "ranges": {"quant.qat_epochs": [0, 0]}}  # seconds a trial: the cluster is the point

RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster(tmp_path_factory):
    """The address of a two-node Ray cluster on this machine, one CPU each; Ray's files under the test's tmp."""
    temp, port = tmp_path_factory.mktemp("r"), free_port()  # short: Ray's socket paths must fit in 107 bytes
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    try:
        subprocess.run([RAY, "start", "--head", "--port", str(port), "--include-dashboard=false", "--temp-dir",
                        str(temp), *common], check=True, capture_output=True, timeout=300, env=env)
        subprocess.run([RAY, "start", "--address", f"127.0.0.1:{port}", *common], check=True, capture_output=True,
                       timeout=300, env=env)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=300, env=env)


def search(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "compression", "search", "--epochs", "2", "--space", json.dumps(QUANT_ONLY),
                           "--json", *args], cwd=ROOT, text=True, capture_output=True, timeout=1200,
                          env={**os.environ, "COMPRESSION_HOME": str(home)})


@pytest.mark.slow
def test_a_search_runs_on_a_ray_cluster_and_lands_in_the_drivers_store(home, ray_cluster):
    done = search(home, "--trials", "3", "--workers", "2", "--executor", "ray", "--ray-address", ray_cluster)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert (report["trials"], report["complete"]) == (3, 3) and report["frontier"]
    store = Store(home)
    results = store.results()
    assert Recipe(epochs=2).hash in {r.recipe_hash for r in results}  # the baseline, computed on the cluster too
    assert all((home / rel).is_file() for r in results for rel in r.artifacts.values())  # files in the driver's store
    assert store.get("weights", Recipe(epochs=2).training_key) is not None
    for result in results:
        assert result.provenance.computed_on, result.recipe_hash  # the worker's CPU, beside the driver's
        assert result.latency_measured and result.baseline_latency_ms is not None
    base = store.get_result(Recipe(epochs=2).hash)
    compressed = [r for r in results if r.recipe_hash != base.recipe_hash]
    assert compressed and all(abs(r.speedup_vs_baseline - speedup(r.baseline_latency_ms, r.latency_ms)) < 1e-9
                              for r in compressed)
    assert all(r.speedup_vs_baseline in r.speedup_interval for r in compressed)  # from the rounds timed here
    assert not (home / "work").exists() or not any((home / "work").iterdir())

    # a sweep on the same cluster: another seed, so its baseline and both recipes are new
    grid = {"base": {"epochs": 2, "seed": 1}, "grid": {"quant.mode": ["int8-dynamic", "fp16"]}}
    done = subprocess.run([sys.executable, "-m", "compression", "sweep", "--grid", json.dumps(grid), "--workers", "2",
                           "--executor", "ray", "--ray-address", ray_cluster], cwd=ROOT, text=True,
                          capture_output=True, timeout=1200, env={**os.environ, "COMPRESSION_HOME": str(home)})
    assert done.returncode == 0, done.stderr[-3000:]
    swept = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(swept) == 2 and not any(r["from_store"] for r in swept) and "(ray)" in done.stderr
    assert all(store.get_result(r["recipe_hash"]).provenance.computed_on for r in swept)


def test_an_address_no_ray_cluster_answers_is_one_line_within_ten_seconds(home):
    started = time.monotonic()
    done = search(home, "--executor", "ray", "--ray-address", f"127.0.0.1:{free_port()}")
    assert time.monotonic() - started < 10 + 5  # the CLI's own start-up on a loaded machine beside the 10 s
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: no Ray cluster answers at"), lines
    for args, message in ((("--executor", "ray"), "--executor ray and --ray-address ADDRESS go together"),
                          (("--ray-address", "nowhere"), "--executor ray and --ray-address")):
        done = search(home, *args)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    assert Store(home).results() == []
