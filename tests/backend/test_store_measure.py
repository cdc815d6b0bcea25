"""The store round-trips results atomically; measurement helpers count what they claim."""

import gzip
import json
import sqlite3
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from torch import nn

from compression.export import export_onnx
from compression.measure import (TimingPlan, count_flops, count_params, cpu_flags, file_sizes, layer_sparsity,
                                 onnx_accuracy, time_interleaved, time_rounds)
from compression.recipe import DistillSpec, PruneSpec, QuantSpec, Recipe
from compression.result import Latency, LayerSparsity, Result
from compression.stats import RATIO_FLOOR, Interval
from compression.store import Store, StoreError


def make_result(recipe: Recipe) -> Result:
    latency = Latency(p50=1.5, p90=2.0, batch=32, threads=1, runs=100)
    return Result(
        recipe=recipe.to_dict(), recipe_hash=recipe.hash, dataset=recipe.dataset, model=recipe.model,
        accuracy=0.97, accuracy_source="onnxruntime", baseline_accuracy=0.98, params_total=10, params_nonzero=5,
        sparsity=0.5, size_bytes=1000, size_gzip_bytes=500, flops=123, latency_ms=latency,
        latency_ms_single=Latency(p50=0.1, p90=0.2, batch=1, threads=1, runs=500), latency_measured=True,
        speedup_vs_baseline=1.2, size_ratio_vs_baseline=0.5, stage_seconds={"train": 1.0},
        created_at="2026-11-22T00:00:00+00:00", baseline_latency_ms=latency,
        layers=[LayerSparsity(name="fc", shape=[2, 5], weights=10, nonzero=5)])


def test_recipe_hash_is_stable_and_sensitive():
    a = Recipe(prune=PruneSpec("channel-l2", 0.5))
    assert a.hash == Recipe.from_dict(a.to_dict()).hash
    assert a.hash != Recipe(prune=PruneSpec("channel-l2", 0.6)).hash
    assert a.baseline() == Recipe()


def test_recipe_order_keeps_only_what_changes_the_computation():
    prune, quant = PruneSpec("channel-l2", 0.5), QuantSpec("int8-static")
    assert Recipe(prune=prune, order=("quant", "prune", "distill")) == Recipe(prune=prune)
    late = Recipe(prune=prune, quant=quant, order=("quant", "prune"))
    assert late.stages == ("quant", "prune") and late.technique == "quant+prune"
    assert late.hash != Recipe(prune=prune, quant=quant).hash
    full = Recipe(prune=prune, quant=quant, distill=DistillSpec())
    assert full.stages == ("distill", "prune", "quant") and Recipe.from_dict(full.to_dict()) == full
    assert full.stage_key(1) == Recipe(prune=prune, distill=DistillSpec(), quant=QuantSpec("fp16")).stage_key(1)
    assert full.stage_key(0) != full.stage_key(1)
    named = Recipe(model="cnn", distill=DistillSpec(student="cnn"))  # the teacher's family, named: the default
    assert named.hash == Recipe(model="cnn", distill=DistillSpec()).hash
    assert named.hash != Recipe(model="cnn", distill=DistillSpec(student="mobilenet")).hash


def test_only_a_result_with_a_file_has_a_gzip_size():
    measured = make_result(Recipe(prune=PruneSpec("channel-l2", 0.5)))
    simulated = replace(make_result(Recipe(quant=QuantSpec("fake", 4))), size_source="computed: packed 4-bit weights")
    assert measured.file_gzip_bytes == 500 and simulated.file_gzip_bytes is None


def test_store_round_trips_a_result_with_its_artifacts(tmp_path):
    store = Store(tmp_path / "store")
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"onnx bytes")
    recipe = Recipe(prune=PruneSpec("l1-unstructured", 0.3))
    stored = store.put_result(make_result(recipe), {"model.onnx": artifact})
    loaded = Store(tmp_path / "store").get_result(recipe.hash)
    assert loaded is not None and loaded.from_store
    assert loaded.to_dict() | {"from_store": False} == stored.to_dict()
    assert store.path(loaded, "model.onnx").read_bytes() == b"onnx bytes"
    with sqlite3.connect(tmp_path / "store" / "results.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failed_write_leaves_no_result(tmp_path):
    store = Store(tmp_path / "store")
    recipe = Recipe()
    with pytest.raises(StoreError, match="No such file"):
        store.put_result(make_result(recipe), {"model.onnx": tmp_path / "missing.onnx"})
    assert store.get_result(recipe.hash) is None
    assert list(store.artifacts.iterdir()) == []


def test_storing_a_result_again_keeps_the_first_and_never_deletes_what_it_names(tmp_path):
    """Two processes that computed the same recipe: the first complete row wins, the second copy is discarded,
    and the folder the first names (which another process may be reading) is never deleted."""
    store = Store(tmp_path / "store")
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"first")
    first = store.put_result(make_result(Recipe()), {"model.onnx": artifact})
    artifact.write_bytes(b"second")
    second = store.put_result(make_result(Recipe()), {"model.onnx": artifact})
    assert second.artifacts == first.artifacts and store.path(second, "model.onnx").read_bytes() == b"first"
    assert store.path(store.get_result(Recipe().hash), "model.onnx").read_bytes() == b"first"
    assert len(list(store.artifacts.iterdir())) == 1  # the second copy is gone


def test_a_result_whose_artifact_vanished_is_not_served(tmp_path):
    store = Store(tmp_path / "store")
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"x")
    result = store.put_result(make_result(Recipe()), {"model.onnx": artifact})
    store.path(result, "model.onnx").unlink()
    assert store.get_result(result.recipe_hash) is None


def test_flops_params_and_sparsity_are_counted_on_the_real_model():
    model = nn.Sequential(nn.Flatten(), nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 2))
    with torch.no_grad():
        model[1].weight[:2] = 0
    assert count_flops(model, (1, 2, 5)) == 2 * (10 * 5 + 5 * 2)
    total, nonzero = count_params(model)
    assert total == 10 * 5 + 5 + 5 * 2 + 2
    assert total - nonzero >= 20
    assert layer_sparsity(model)[0] == LayerSparsity(name="1", shape=[5, 10], weights=50, nonzero=30)


def test_gzip_size_shows_zeros(tmp_path):
    dense, sparse = tmp_path / "dense.bin", tmp_path / "sparse.bin"
    values = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
    dense.write_bytes(values.tobytes())
    values[: 9_000] = 0
    sparse.write_bytes(values.tobytes())
    assert file_sizes(dense)[0] == file_sizes(sparse)[0] == 40_000
    assert file_sizes(sparse)[1] < 0.3 * file_sizes(dense)[1]
    assert file_sizes(dense)[1] == len(gzip.compress(dense.read_bytes(), 9, mtime=0))


def test_latency_is_timed_in_onnxruntime_and_ranks_a_bigger_model_slower(tmp_path):
    small = export_onnx(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), (1, 8, 8), tmp_path / "small.onnx")
    big = export_onnx(nn.Sequential(nn.Flatten(), nn.Linear(64, 2048), nn.ReLU(), nn.Linear(2048, 10)),
                      (1, 8, 8), tmp_path / "big.onnx")
    plan = TimingPlan(warmup=5, min_runs=50, min_seconds=0.2)
    fast, slow = time_interleaved([small, big], (1, 8, 8), batch=32, threads=1, plan=plan)
    assert fast.runs == slow.runs >= 50
    assert fast.batch == 32 and fast.threads == 1
    assert fast.p50 <= fast.p90 and slow.p50 <= slow.p90
    assert slow.p50 > 2 * fast.p50


def test_onnx_accuracy_scores_the_file(digits, trained_cnn, tmp_path):
    path = export_onnx(trained_cnn, digits.input_shape, tmp_path / "cnn.onnx")
    assert onnx_accuracy(path, digits.test) > 0.95


def test_cpu_flags_are_reported():
    flags = cpu_flags()
    assert set(flags) >= {"avx2", "avx512_vnni"} and all(isinstance(v, bool) for v in flags.values())


def test_one_file_timed_twice_interleaved_has_a_speed_up_interval_around_its_median_ratio(tmp_path):
    """The interval brackets the median per-round ratio, at least as wide as the floor. (Whether it contains 1
    for one file timed against itself depends on the host: under load the second place in a round ran up to
    10 % slower here, so that is not asserted; the rule that reads it is tested in test_stats.)"""
    model = export_onnx(nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10)), (1, 8, 8),
                        tmp_path / "model.onnx")
    rounds = time_rounds([model, model], (1, 8, 8), batch=32, threads=1,
                         plan=TimingPlan(warmup=5, min_runs=200, min_seconds=0.2))
    assert rounds.cpu.shape == rounds.wall.shape == (rounds.latencies[0].runs, 2)
    interval = rounds.speedup_interval(0, 1)
    median = float(np.median(rounds.cpu[:, 1] / rounds.cpu[:, 0]))
    assert interval.low < median < interval.high and interval.high / interval.low >= (1 + RATIO_FLOOR) ** 2 - 1e-9
    result = replace(make_result(Recipe(prune=PruneSpec("channel-l2", 0.5))), speedup_interval=interval,
                     technique="prune")
    assert result.speedup_noise.within == (1.0 in interval)


def test_a_result_stored_before_the_noise_fields_loads_without_them():
    stored = asdict(replace(make_result(Recipe(prune=PruneSpec("channel-l2", 0.5))), technique="prune"))
    for key in ("speedup_interval", "accuracy_p_value", "test_images"):
        del stored[key]
    old = Result.from_dict(json.loads(json.dumps(stored)))
    assert old.speedup_interval is None and old.accuracy_p_value is None
    assert not old.speedup_noise.within and "before its rounds were kept" in old.speedup_noise.test  # 1.2×
    assert replace(old, speedup_vs_baseline=1 / 1.01).speedup_noise.within  # 1.01× the latency: within ×/÷ 1.05
    assert old.accuracy_noise() is None  # neither paired predictions nor the test split's size: nothing to say
    new = Result.from_dict(json.loads(json.dumps(asdict(replace(old, speedup_interval=Interval(0.9, 1.2),
                                                                test_images=360, accuracy_p_value=0.02)))))
    assert new.speedup_interval == Interval(0.9, 1.2) and new.speedup_noise.within
    assert not new.accuracy_noise().within
