"""A second runtime (issue 23): the digits / cnn baseline (fp32) and its int8-static file, each run in onnxruntime
and in OpenVINO's CPU plugin (`--runtime openvino`: float32 precision, one stream, compiled for the timed batch),
all four timed interleaved in one process under the benchmark lock, one intra-op thread, batch 32 and batch 1,
ROUNDS rounds. Ratios of the calling thread's CPU-time p50 (median of the rounds, min – max), and each file's
test accuracy in each runtime with how many test predictions the runtimes share.

No target: a report of what the second runtime buys on this machine (the issue saw the 3×32×32 INT8 file run at
0.79× of onnxruntime's time)."""

import statistics
import tempfile
from pathlib import Path

from common import markdown_table, write

from compression import pipeline  # noqa: E402 - common puts the project on the path
from compression.measure import onnx_accuracy, onnx_logits, provenance, runner, time_runners  # noqa: E402
from compression.recipe import QuantSpec, Recipe  # noqa: E402
from compression.store import Store  # noqa: E402

ROUNDS = 5
RUNTIMES = ("onnxruntime", "openvino")
FILES = ("fp32", "int8-static")
RATIOS = {"int8 / fp32 in onnxruntime": (("onnxruntime", "int8-static"), ("onnxruntime", "fp32")),
          "int8 / fp32 in openvino": (("openvino", "int8-static"), ("openvino", "fp32")),
          "openvino / onnxruntime, fp32": (("openvino", "fp32"), ("onnxruntime", "fp32")),
          "openvino / onnxruntime, int8": (("openvino", "int8-static"), ("onnxruntime", "int8-static")),
          "openvino int8 / onnxruntime fp32": (("openvino", "int8-static"), ("onnxruntime", "fp32"))}


def rounds(paths: dict[str, Path], shape: tuple[int, ...], batch: int) -> list[dict[str, float]]:
    """ROUNDS interleaved timings of every (runtime, file): CPU-time p50 in ms, keyed 'runtime/file'."""
    keys = [(runtime, name) for runtime in RUNTIMES for name in FILES]
    runners = [runner(paths[name], 1, runtime, shape=(batch, *shape)) for runtime, name in keys]
    out = []
    for _ in range(ROUNDS):
        timed = time_runners(runners, shape, batch, 1)
        out.append({f"{runtime}/{name}": lat.cpu_p50 for (runtime, name), lat in zip(keys, timed)})
    return out


def main() -> None:
    recipe = Recipe()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "home")
        base = pipeline.run(recipe, store)
        int8 = pipeline.run(Recipe(quant=QuantSpec("int8-static")), store)
        paths = {"fp32": store.path(base, "model.onnx"), "int8-static": store.path(int8, "model.onnx")}
        splits = pipeline.splits_for(recipe)
        accuracy = {f"{runtime}/{name}": onnx_accuracy(path, splits.test, runtime)
                    for runtime in RUNTIMES for name, path in paths.items()}
        agree = {name: float((onnx_logits(path, splits.test.x, runtime="openvino").argmax(1)
                              == onnx_logits(path, splits.test.x).argmax(1)).mean()) for name, path in paths.items()}
        timed = {batch: rounds(paths, splits.input_shape, batch) for batch in (32, 1)}
    rows, ratios = [], {}
    for label, (top, bottom) in RATIOS.items():
        cells = [label]
        for batch, runs in timed.items():
            values = [r["/".join(top)] / r["/".join(bottom)] for r in runs]
            ratios[f"{label}, batch {batch}"] = values
            cells.append(f"{statistics.median(values):.3f} ({min(values):.3f} – {max(values):.3f})")
        rows.append(cells)
    p50s = [[key, *[f"{statistics.median(r[key] for r in runs):.4f}" for runs in timed.values()]]
            for key in timed[32][0]]
    accuracies = [[name, *[f"{accuracy[f'{runtime}/{name}']:.2%}" for runtime in RUNTIMES], f"{agree[name]:.2%}"]
                  for name in FILES]
    versions = [provenance(1, 32, runtime=runtime).runtime for runtime in RUNTIMES]
    payload = {"rounds": ROUNDS, "recipe": recipe.to_dict(), "timed_cpu_p50_ms": timed, "ratios": ratios,
               "accuracy": accuracy, "prediction_agreement": agree, "runtimes": versions,
               "cpu": provenance(1, 32).cpu, "cpu_flags": provenance(1, 32).flags_on}
    markdown = (f"### Two runtimes: digits / cnn, fp32 and int8-static, {ROUNDS} interleaved rounds\n\n"
                f"{' and '.join(versions)}; one intra-op thread; ratios of the calling thread's CPU-time p50, "
                f"median of the rounds (min – max). CPU flags: {payload['cpu_flags']}.\n\n"
                + markdown_table(["ratio", "batch 32", "batch 1"], rows)
                + "\nCPU-time p50 (ms, median of the rounds)\n\n"
                + markdown_table(["runtime / file", "batch 32", "batch 1"], p50s)
                + "\nTest accuracy of each file in each runtime, and the test predictions both runtimes share\n\n"
                + markdown_table(["file", *RUNTIMES, "same prediction"], accuracies))
    write("runtimes", payload, markdown)


if __name__ == "__main__":
    main()
