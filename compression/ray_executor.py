"""Recipes measured as tasks on a Ray cluster (`--executor ray --ray-address ADDRESS|auto`).

A task gets the store rows its recipe builds on (trained weights, the baseline's result, stage checkpoints, an
imported model) with their files, computes the recipe in a store of its own on the worker, and returns every
row it made with its files. The driver alone writes its store, and re-times the result's latency on its own
machine, interleaved with its own baseline as every local result is, so figures from different machines never
mix; the worker's CPU is recorded beside the driver's. A task whose worker dies is retried once by Ray.

The workers need this project's dependencies installed (the same pinned versions); the `compression` package
itself is shipped with each job. Image folders must be at the same path on every node."""

import os
import socket
import tempfile
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from compression.errors import CompressionError
from compression.recipe import Recipe
from compression.result import Result, speedup
from compression.store import Store

CONNECT_SECONDS = 5.0  # an address that does not answer within this is refused (one line, well within 10 s)


@dataclass(frozen=True)
class Row:
    """One store row with its files' bytes (name -> content), as it travels between driver and worker."""

    kind: str
    key: str
    payload: dict[str, Any]
    files: dict[str, bytes]


def needed(recipe: Recipe) -> list[tuple[str, str]]:
    """The (kind, key) rows computing `recipe` may build on."""
    from compression.catalog import MODELS
    from compression.imports import KIND

    keys = [("weights", recipe.training_key), ("result", recipe.baseline().hash)]
    keys += [("checkpoint", recipe.stage_key(i)) for i in range(len(recipe.stages))]
    if MODELS[recipe.model].imported:
        keys.append((KIND, recipe.model))
    return keys


def pack(store: Store, keys: list[tuple[str, str]]) -> list[Row]:
    """The rows of `keys` that `store` holds, with their files."""
    rows = []
    for kind, key in keys:
        payload = store.get(kind, key)
        if payload is not None:
            files = {name: (store.root / rel).read_bytes() for name, rel in payload.get("artifacts", {}).items()}
            rows.append(Row(kind, key, payload, files))
    return rows


def unpack(store: Store, rows: list[Row]) -> None:
    """Put `rows` into `store` (a row it holds already is kept: the store's first-write-wins rule)."""
    with tempfile.TemporaryDirectory() as tmp:
        for i, row in enumerate(rows):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            files = {}
            for name, data in row.files.items():
                (folder / name).write_bytes(data)
                files[name] = folder / name
            store.put(row.kind, row.key, {k: v for k, v in row.payload.items() if k != "artifacts"}, files or None)


def compute(recipe: Recipe, given: list[Row]) -> tuple[list[Row], str]:
    """What a Ray task runs: `recipe` computed in a store of its own seeded with `given`; every row it made,
    and this worker's CPU."""
    from compression import pipeline
    from compression.measure import provenance

    with tempfile.TemporaryDirectory() as tmp:
        previous = os.environ.get("COMPRESSION_HOME")
        os.environ["COMPRESSION_HOME"] = tmp  # the model registry finds an imported model in this store
        try:
            store = Store(Path(tmp))
            unpack(store, given)
            shipped = {(row.kind, row.key) for row in given}
            pipeline.run(recipe, store)
            made = [(kind, key) for kind, key, _ in store.rows() if (kind, key) not in shipped]
            worker = provenance(recipe.threads, recipe.batch, recipe.provider, recipe.runtime)
            return pack(store, made), f"{worker.cpu} ({worker.cpu_count} cores, {worker.flags_on})"
        finally:
            if previous is None:
                os.environ.pop("COMPRESSION_HOME", None)
            else:
                os.environ["COMPRESSION_HOME"] = previous


def check_reachable(address: str) -> None:
    """One line within CONNECT_SECONDS unless a Ray head answers at host:port ('auto' is left to Ray)."""
    if address == "auto":
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise CompressionError(f"--ray-address must be HOST:PORT or auto, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        raise CompressionError(f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one with "
                               "`ray start --head` or give its address") from None


class RayExecutor:
    """Recipes as Ray tasks; the driver unpacks what each returns into its store and re-times its latency."""

    name = "ray"

    def __init__(self, store: Store, address: str, workers: int) -> None:
        import ray

        import compression

        check_reachable(address)
        self.store, self.workers = store, workers
        try:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False, include_dashboard=False,
                     runtime_env={"py_modules": [str(Path(compression.__file__).parent)]})
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise CompressionError(f"Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
        self.task = ray.remote(max_retries=1, num_cpus=1)(compute)
        self.refs: dict[Future, Any] = {}

    def submit(self, recipe: Recipe) -> Future:
        ref = self.task.remote(recipe, pack(self.store, needed(recipe)))
        future = ref.future()
        self.refs[future] = ref
        return future

    def land(self, value: Any) -> Result:
        """Store a task's rows, each result re-timed here against this machine's own baseline (a baseline the
        task computed too is stored first); the submitted recipe's Result (the last one made)."""
        rows, worker_cpu = value
        unpack(self.store, [row for row in rows if row.kind != "result"])
        results = sorted((row for row in rows if row.kind == "result"),
                         key=lambda row: not Recipe.from_dict(row.payload["recipe"]).is_baseline)
        for row in results:
            result = retimed(Result.from_dict(row.payload), row.files["model.onnx"], self.store, worker_cpu)
            unpack(self.store, [Row("result", row.key, result.to_dict(), row.files)])
        landed = self.store.get_result(results[-1].key)
        landed.from_store = False  # computed for this request, not served
        return landed

    def stop(self) -> None:
        import ray

        for ref in self.refs.values():
            ray.cancel(ref, force=True)

    def close(self) -> None:
        import ray

        ray.shutdown()


def retimed(result: Result, onnx_file: bytes, store: Store, worker_cpu: str) -> Result:
    """`result` with its latency timed on this machine, interleaved with its stored baseline's ONNX, and
    where it was computed beside where it was timed."""
    from compression.measure import provenance, time_interleaved, time_rounds

    recipe = Recipe.from_dict(result.recipe)
    here = replace(provenance(recipe.threads, recipe.batch, recipe.provider, recipe.runtime), computed_on=worker_cpu)
    base = None if recipe.is_baseline else store.get_result(recipe.baseline().hash)
    if not result.latency_measured or (base is None and not recipe.is_baseline):
        return replace(result, provenance=here)
    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(tmp) / "model.onnx"
        onnx.write_bytes(onnx_file)
        paths = [onnx] if base is None else [onnx, store.path(base, "model.onnx")]
        shape = _input_shape(onnx)
        timing = {"threads": recipe.threads, "provider": recipe.provider, "runtime": recipe.runtime}
        rounds = time_rounds(paths, shape, recipe.batch, **timing)
        single = time_interleaved(paths, shape, 1, **timing)
    batched = rounds.latencies
    return replace(result, latency_ms=batched[0], latency_ms_single=single[0], baseline_latency_ms=batched[-1],
                   speedup_vs_baseline=speedup(batched[-1], batched[0]), provenance=here,
                   speedup_interval=rounds.speedup_interval(0, 1) if base is not None else None)


def _input_shape(onnx: Path) -> tuple[int, ...]:
    import onnxruntime as ort

    shape = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
    return tuple(int(d) for d in shape[1:])
