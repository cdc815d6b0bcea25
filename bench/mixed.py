"""Mixed precision on digits / cnn (issue 23): `--quant int8-static --max-drop 0.3` keeps the most sensitive layers in
float until the validation drop fits; target: fewer float layers than all-or-nothing needs for the same bound
(every layer int8, else none). Seeds 0, 1 and 2 of the default recipe (20 epochs, layout auto, batch 32, one
thread), each beside the plain int8-static result: float layers kept and needed, the per-layer sensitivity
table, validation and test accuracy (onnxruntime), size and latency ratio vs fp32 (timed interleaved); and the
simulated per-layer 4/8-bit widths for the same bound with their packed size (torch, simulated).
`--render` writes the tables again from the committed results without measuring."""

import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from common import markdown_table, read, write

from compression import mixed, pipeline
from compression.recipe import QuantSpec, Recipe
from compression.result import Result
from compression.store import Store

MAX_DROP = 0.3
SEEDS = (0, 1, 2)


def figures(result: Result) -> dict:
    return {"recipe_hash": result.recipe_hash, "val_accuracy": result.val_accuracy, "accuracy": result.accuracy,
            "accuracy_source": result.accuracy_source, "size_ratio": result.size_ratio_vs_baseline,
            "latency_ratio": 1 / result.speedup_vs_baseline if result.speedup_vs_baseline else None,
            "layout": result.quant.layout_choice.layout if result.quant.layout_choice else None,
            "float_compute_ops": result.quant.float_compute_ops}


def measure(store: Store, seed: int) -> dict:
    base = Recipe(dataset="digits", model="cnn", seed=seed)
    print(f"seed {seed}", file=sys.stderr, flush=True)
    baseline = pipeline.run(base, store)
    plain = pipeline.run(Recipe(dataset="digits", model="cnn", seed=seed, quant=QuantSpec("int8-static")), store)
    bounded = pipeline.run(Recipe(dataset="digits", model="cnn", seed=seed,
                                  quant=QuantSpec("int8-static", max_drop=MAX_DROP)), store)
    choice = bounded.quant.mixed_precision
    bits = mixed.baseline_report(base, MAX_DROP, store)["bits"]
    return {"seed": seed, "baseline": {"val_accuracy": baseline.val_accuracy, "accuracy": baseline.accuracy},
            "int8": figures(plain), "mixed": figures(bounded), "mixed_precision": asdict(choice), "bits": bits}


def verdict(row: dict) -> str:
    kept, needed = len(row["mixed_precision"]["float_layers"]), row["mixed_precision"]["all_or_nothing_float_layers"]
    if kept < needed:
        return "PASS"
    return "N/A (int8 everywhere meets the bound: no float layer to save)" if needed == 0 else "FAIL"


def render(rows: list[dict]) -> str:
    """The markdown tables of the measured rows."""
    summary = [[r["seed"], len(r["mixed_precision"]["float_layers"]),
                ", ".join(r["mixed_precision"]["float_layers"]) or "-",
                r["mixed_precision"]["all_or_nothing_float_layers"],
                f"{100 * r['baseline']['val_accuracy']:.2f} / {100 * r['baseline']['accuracy']:.2f}",
                f"{100 * r['int8']['val_accuracy']:.2f} / {100 * r['int8']['accuracy']:.2f}",
                f"{100 * r['mixed']['val_accuracy']:.2f} / {100 * r['mixed']['accuracy']:.2f}",
                f"{r['mixed']['size_ratio']:.3f}", f"{r['mixed']['latency_ratio']:.2f}", r["mixed"]["layout"],
                verdict(r)] for r in rows]
    sensitivity = [[r["seed"], layer["name"], layer["op"], f"{100 * layer['alone_val_accuracy']:.2f}",
                    f"{100 * layer['all_but_val_accuracy']:.2f}"]
                   for r in rows for layer in r["mixed_precision"]["layers"]]
    bits = [[r["seed"], ", ".join(f"{layer['name']} {layer['bits']}" for layer in r["bits"]["layers"]),
             f"{100 * r['bits']['val_accuracy']:.2f} / {100 * r['bits']['test_accuracy']:.2f}",
             f"{r['bits']['packed_bytes']:,}", f"{r['bits']['high_packed_bytes']:,}"] for r in rows]
    markdown = (
        f"# Mixed precision, digits / cnn, `--quant int8-static --max-drop {MAX_DROP}`\n\n"
        "Accuracies in onnxruntime (validation / test, %); size and latency ratios vs the fp32 baseline (latency: "
        "timed interleaved, batch 32, one thread, thread CPU time). Float layers: kept by mixed precision vs needed "
        "by all-or-nothing (every layer int8, else all float) for the same bound on validation.\n\n"
        + markdown_table(["seed", "float layers kept", "which", "all-or-nothing needs", "fp32 val / test",
                          "int8-static (auto) val / test", "mixed val / test", "size ratio", "latency ratio", "layout", "target"],
                         summary)
        + "\nReasons: " + " | ".join(f"seed {r['seed']}: {r['mixed_precision']['reason']}" for r in rows) + "\n\n"
        "Mixed precision's analysis (the table below, and all-or-nothing) converts the plain layout; the deployed "
        "files then take layout auto, which times the layouts with those layers in float. The int8-static (auto) "
        "column is the recipe without --max-drop: its layout auto chose float-first, which keeps the first conv "
        "block in float for speed, so it already holds the layer seed 2's mixed precision keeps. The validation "
        "split has 144 images: one image is 0.69 pt, so a 0.3 pt bound allows no lost image.\n\n"
        "## Per-layer INT8 sensitivity (measured, onnxruntime, validation %)\n\n"
        + markdown_table(["seed", "layer", "op", "this layer alone int8", "all but this layer int8"], sensitivity)
        + f"\n## Simulated per-layer bit widths (torch fake quantization, weights only; within {MAX_DROP} pt)\n\n"
        + markdown_table(["seed", "bits per layer", "val / test (simulated)", "packed bytes (computed)",
                          "all 8-bit packed bytes"], bits))
    return markdown


def main() -> None:
    """Measure every seed and write the results (`--render`: the tables again from the committed JSON)."""
    if "--render" in sys.argv[1:]:
        rows = read("mixed")["seeds"]
    else:
        with tempfile.TemporaryDirectory() as home:
            store = Store(Path(home))
            rows = [measure(store, seed) for seed in SEEDS]
    write("mixed", {"max_drop": MAX_DROP, "seeds": rows}, render(rows))


if __name__ == "__main__":
    main()
