"""The CLI's commands over a grid, a search and the store: `sweep`, `search`, `quant-sensitivity`, `report`, `pareto`, `store check`,
`import` and `worker`. Each returns what to print as JSON (a sweep prints a line per result as it lands); bad input is a
CompressionError."""

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from compression import folders, pareto, settings
from compression.classic import EPOCHS_SCALE, EXPERIMENTS, SETTINGS
from compression.cli_flags import add_budgets, add_common, add_timing, baseline_from, budgets_from, number, print_progress
from compression.errors import CompressionError
from compression.pareto import METRICS
from compression.recipe import Recipe
from compression.store import Store

SWEEP_BASE_FLAGS: dict[str, type] = {"dataset": str, "model": str, "epochs": int, "seed": int, "threads": int,
                                     "batch": int, "provider": str, "runtime": str}
MAX_GRID_BYTES = 1_000_000  # a grid document is a few hundred bytes; a megabyte is a mistake


def add_tools(commands: argparse._SubParsersAction) -> None:
    """The subcommands beyond run, baseline and sensitivity: classic, sweep, search, quant-sensitivity, profile,
    report, pareto, store, import, worker."""
    classic = commands.add_parser("classic", help="rerun a published result with its figures beside ours: hinton "
                                  "(MNIST distillation), deep-compression (LeNet-300-100 pruning + INT8)")
    classic.add_argument("experiment", choices=tuple(EXPERIMENTS))
    classic.add_argument("--setting", choices=SETTINGS, default=SETTINGS[0],
                         help="classroom (a few epochs, minutes) or paper (long training; default classroom)")
    classic.add_argument("--epochs-scale", type=number, default=1.0,
                         help=f"multiply the setting's epochs ({EPOCHS_SCALE[0]:g} … {EPOCHS_SCALE[1]:g}; each at "
                              "least 1)")
    classic.add_argument("--seed", type=int, default=0, help="seed of the data split, init and training")
    classic.add_argument("--json", action="store_true", help="compact one-line JSON instead of indented")
    sweep = commands.add_parser("sweep", help="measure every recipe of a grid; one JSON line per result")
    sweep.add_argument("--grid", required=True, help='grid JSON file, "-" for stdin, or the JSON itself: '
                       '{"base": {"epochs": 20}, "grid": {"prune.method": ["channel-l2"], "prune.ratio": [0.3, 0.5]}}')
    for name, kind in SWEEP_BASE_FLAGS.items():
        sweep.add_argument(f"--{name}", type=kind, default=None, help="base field, over the grid's base")
    add_executor(sweep, "recipes")
    search = commands.add_parser("search", help="multi-objective search (Optuna) over combined recipes: the "
                                                "frontier as JSON, a line per trial on stderr")
    add_common(search)
    search.add_argument("--objectives", default="accuracy,size",
                        help="accuracy, then one or more of size, latency, flops (default accuracy,size)")
    search.add_argument("--trials", type=int, default=24, help="finished trials the study should hold (default 24; "
                                                               "a resumed study runs only the rest)")
    search.add_argument("--max-drop", type=number, help="constraint: at most this many validation accuracy points "
                                                        "below the baseline")
    search.add_argument("--max-kb", type=number, help="constraint: ONNX file at most this many KB")
    search.add_argument("--max-ms", type=number, help="constraint: latency p50 at most this many ms (normalised "
                                                      "to the baseline's)")
    search.add_argument("--sampler", choices=("tpe", "nsga2"), default="tpe",
                        help="Optuna's multi-objective TPE (default) or NSGA-II")
    search.add_argument("--study", default=None, help="the study's name (default DATASET-MODEL-OBJECTIVES-DIGEST "
                                                      "of the rest of the setup): the same name resumes it")
    search.add_argument("--storage", default=None, help="an SQLAlchemy URL of the Optuna storage (default SQLite "
                                                        "inside the store's folder)")
    search.add_argument("--space", default=None, help='narrow the search space: JSON, a file, or "-": {"stages": '
                        '["prune", "quant"], "fixed": {"prune.method": "channel-l2"}, "ranges": {"prune.ratio": '
                        '[0.3, 0.9], "quant.mode": ["int8-static"]}}')
    add_executor(search, "trials")
    quant = commands.add_parser("quant-sensitivity", help="the baseline's per-layer quantization sensitivity: each "
                                "layer alone in INT8 and all but it (measured, onnxruntime, validation), the float "
                                "layers --max-drop keeps, and simulated per-layer 4/8-bit widths with their packed size")
    add_common(quant)
    quant.add_argument("--max-drop", type=number, default=0.3, metavar="PTS",
                       help="validation accuracy points below the float model allowed (default 0.3)")
    profile = commands.add_parser("profile", help="where the time goes: a stored result's per-node onnxruntime "
                                  "profile beside its baseline's, and why it is (or is not) faster; a table on "
                                  "stderr, the figures as JSON")
    profile.add_argument("hash", help="the result's recipe hash, or its first characters")
    profile.add_argument("--runs", type=int, default=200, help="profiled runs of each model (default 200)")
    profile.add_argument("--json", action="store_true", help="compact one-line JSON instead of indented")
    per_class = commands.add_parser("classes", help="which classes a compression hurt: a stored result's per-class "
                                    "test accuracy and confusion matrix against its baseline's (or --against "
                                    "another result), McNemar's exact test, the images that flipped; a table on "
                                    "stderr, the figures as JSON")
    per_class.add_argument("hash", help="the result's recipe hash, or its first characters")
    per_class.add_argument("--against", default=None, help="the reference result's hash (default: its baseline)")
    per_class.add_argument("--json", action="store_true", help="compact one-line JSON instead of indented")
    report = commands.add_parser("report", help="write a self-contained HTML report of the stored results")
    report.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    report.add_argument("--dataset", default=None, help="only this data set's results")
    report.add_argument("--model", default=None, help="only this model's results")
    report.add_argument("--title", default="Compression report")
    report.add_argument("--json", action="store_true", help="compact one-line JSON instead of indented")
    add_budgets(report)
    front = commands.add_parser("pareto", help="Pareto frontiers and budget answers over a stored baseline's results")
    add_common(front)
    add_budgets(front)
    front.add_argument("--simulated", action="store_true", help="let simulated results (no deployable file) join the "
                                                                "frontiers and answer budgets (default: only results "
                                                                "measured in a runtime)")
    store = commands.add_parser("store", help="the store's health")
    actions = store.add_subparsers(dest="action", required=True, parser_class=type(store))
    check = actions.add_parser("check", help="check every row and artifact; --repair quarantines the damaged ones "
                                             "and removes folders left by killed runs")
    check.add_argument("--repair", action="store_true", help="mend what the check finds")
    check.add_argument("--json", action="store_true", help="compact one-line JSON instead of indented")
    bring = commands.add_parser("import", help="import your own model (ONNX, or torchvision weights) under a name, "
                                               "then measure it as the baseline; --model NAME works everywhere after")
    bring.add_argument("file", type=Path, help="an .onnx file, or weights (.safetensors, .pt, .pth) with --arch")
    bring.add_argument("--name", required=True, help="the name to use it by (--model NAME)")
    bring.add_argument("--dataset", default="digits", help="the data set to measure it on (default digits)")
    bring.add_argument("--arch", default=None, help="the torchvision architecture of the weights (resnet18, "
                                                    "mobilenet_v3_small, resnet50, efficientnet_b0, …)")
    bring.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                       help="input height and width of --arch weights (default 224 224)")
    bring.add_argument("--mean", type=number, nargs="+", default=None,
                       help="per-channel mean of inputs in 0 … 1 the model was trained with (default: ImageNet's "
                            "for --arch; for ONNX the file's 'mean'/'std' metadata, else the data's train statistics)")
    bring.add_argument("--std", type=number, nargs="+", default=None, help="per-channel std, with --mean")
    bring.add_argument("--seed", type=int, default=0, help="seed of the data split")
    add_timing(bring)
    bring.add_argument("--json", action="store_true", help="compact one-line JSON instead of indented")
    worker = commands.add_parser("worker", help="run the jobs the app queues in the store ($COMPRESSION_HOME) until "
                                                "Ctrl-C; its running jobs go back to the queue")
    worker.add_argument("--slots", type=int, default=os.cpu_count(),
                        help="jobs at once (default: this machine's cores)")
    worker.add_argument("--parent", type=int, default=None,
                        help="stop when the process of this id is gone (the server that started the worker)")


def _json_text(value: str, what: str = "grid") -> str:
    """The JSON document a flag names (a grid, a search space): stdin for "-", the text itself if it is JSON,
    else a file's contents."""
    if value.lstrip().startswith(("{", "[")):
        return value
    if value == "-":
        source, data = "stdin", sys.stdin.buffer.read(MAX_GRID_BYTES + 1)
    else:
        path = Path(value)
        if path.is_dir():
            raise CompressionError(f"{what} file {value} is a folder: give a JSON file")
        if not path.is_file():
            raise CompressionError(f"{what} file {value} not found")
        source = f"{what} file {value}"
        with path.open("rb") as f:
            data = f.read(MAX_GRID_BYTES + 1)
    if len(data) > MAX_GRID_BYTES:
        raise CompressionError(f"{source} is larger than {MAX_GRID_BYTES:,} bytes: a {what} is a small JSON document")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CompressionError(f"{source} is not UTF-8 text (byte {data[exc.start]:#04x} at {exc.start})") from None


def add_executor(parser: argparse.ArgumentParser, what: str) -> None:
    """--workers, --executor and --ray-address: where and how many `what` run at once."""
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help=f"{what} at once (default: this machine's cores); with the local executor, the "
                        "worker slots it starts when no worker serves the store")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help=f"where {what} run: jobs of the store's queue, on its workers (`make run`'s, `worker`) "
                        "or slots of this process while none serves it (default), or tasks on a Ray cluster")
    parser.add_argument("--ray-address", default=None, help="the Ray cluster's HOST:PORT, or auto (with --executor ray)")


def ray_address(args: argparse.Namespace) -> str | None:
    """The Ray address of --executor ray (None: the local executor); bad combinations are one line."""
    if args.workers < 1:
        raise CompressionError(f"--workers must be at least 1, got {args.workers}")
    if (args.executor == "ray") != (args.ray_address is not None):
        raise CompressionError("--executor ray and --ray-address ADDRESS go together")
    return args.ray_address


def sweep_command(args: argparse.Namespace) -> None:
    """Measure every recipe of the grid: each Result as one compact JSON line on stdout as it lands (exactly
    what `run --json` prints), a progress line on stderr. Bad input fails before anything starts."""
    from compression import sweep

    address = ray_address(args)
    given = {name: getattr(args, name) for name in SWEEP_BASE_FLAGS if getattr(args, name) is not None}
    recipes = sweep.Grid.from_json(_json_text(args.grid), given).recipes()
    store = Store()
    folders.preflight(r.dataset for r in recipes if store.get_result(r.hash) is None)

    def show(event: sweep.SweepProgress) -> None:
        if event.result is not None:
            print(json.dumps(event.result.to_dict(), separators=(",", ":")), flush=True)
        print(event.line, file=sys.stderr, flush=True)
    sweep.run(recipes, store, args.workers, show, address)


def search_command(args: argparse.Namespace) -> dict[str, Any]:
    """Search for the frontier of the objectives: a line per finished trial on stderr, the report as JSON."""
    from compression import search

    address = ray_address(args)
    space = search.Space.from_json(_json_text(args.space, "search space")) if args.space else search.Space()
    request = search.SearchRequest(baseline_from(args), tuple(o.strip() for o in args.objectives.split(",")),
                                   args.trials, search.Limits(args.max_drop, args.max_kb, args.max_ms),
                                   args.sampler, args.study, args.storage, space, args.seed)
    request.validate()
    folders.preflight([request.base.dataset])
    return search.run(request, Store(), args.workers, lambda event: print(event.line, file=sys.stderr, flush=True),
                      ray_address=address).to_dict()


def _writable_file(out: Path) -> Path:
    """`out` if a file can be written there, else a one-line CompressionError saying why."""
    if out.is_dir():
        raise CompressionError(f"--out: {out} is a folder: give a file name, e.g. {out / 'report.html'}")
    if not out.parent.is_dir():
        raise CompressionError(f"--out: folder {out.parent} does not exist")
    return out


def report_command(args: argparse.Namespace) -> dict[str, Any]:
    """Write the HTML report of the stored results (optionally of one data set / model); say what it holds."""
    from compression import profile, report

    out = _writable_file(args.out)
    store = Store()
    results = store.results(args.dataset, args.model)
    if not results:
        raise CompressionError("no stored results to report: run a baseline or a sweep first")
    profiles = {r.recipe_hash: p for r in results if (p := profile.stored(store, r.recipe_hash)) is not None}
    try:
        report.write(out, results, budgets_from(args), args.title, profiles)
    except OSError as exc:
        raise CompressionError(f"--out: cannot write {out} ({exc.strerror or exc})") from None
    groups = pareto.groups(results)
    return {"out": str(out.resolve()), "results": len(results),
            "workspaces": [{"baseline": key, "dataset": group[0].dataset, "model": group[0].model,
                            "results": len(group)} for key, group in groups.items()]}


def quant_sensitivity_command(args: argparse.Namespace) -> dict[str, Any]:
    """The baseline's INT8 sensitivity table and mixed-precision choice, and its simulated bit widths, as JSON."""
    from compression import mixed

    base = baseline_from(args)
    folders.preflight([base.dataset])
    return mixed.baseline_report(base, args.max_drop, Store(), print_progress)


def profile_command(args: argparse.Namespace) -> dict[str, Any]:
    """A stored result's profile beside its baseline's, measured now: the table on stderr, the figures as JSON
    (stored for the app and the report, unless one is stored already)."""
    from compression import profile

    report = profile.profile_and_store(Store(), args.hash, args.runs)
    print("\n".join(report.pop("lines")), file=sys.stderr, flush=True)
    return report


def classes_command(args: argparse.Namespace) -> dict[str, Any]:
    """A stored result against its baseline (or --against) class by class: a table on stderr (most hurt first),
    the figures as JSON."""
    from compression import pipeline
    from compression.profile import find_result

    store = Store()
    result = find_result(store, args.hash)
    reference = find_result(store, args.against) if args.against else store.get_result(
        Recipe.from_dict(result.recipe).baseline().hash)
    if reference is None:
        raise CompressionError(f"the baseline of {result.recipe_hash} is not stored: give --against HASH")
    comparison = pipeline.compare_results(store, reference, result)
    paired = comparison.paired
    verdict = "within noise" if paired.within_noise else "a real difference"
    lines = [f"{reference.recipe_hash} → {result.recipe_hash}: {paired.only_first} test images right only before, "
             f"{paired.only_second} right only after (McNemar exact p = {paired.p_value:.3g}: {verdict})",
             f"{'class':>12} {'before':>8} {'after':>8} {'change':>8}  p"]
    lines += [f"{c.before.name:>12} {c.before.accuracy:8.2%} {c.after.accuracy:8.2%} {c.delta * 100:+7.2f}pt  "
              f"{c.paired.p_value:.3g}" for c in comparison.classes]
    print("\n".join(lines), file=sys.stderr, flush=True)
    return {"reference": reference.recipe_hash, "result": result.recipe_hash, **asdict(comparison),
            "confusion": pipeline.class_view(store, result).confusion}


def pareto_command(args: argparse.Namespace) -> dict[str, Any]:
    """The frontiers (size, latency, FLOPs) of the stored results of the baseline the flags describe, and the
    answers to the budget flags (default: pareto.default_budgets)."""
    base = baseline_from(args)
    base.validate()
    store = Store()
    baseline = store.get_result(base.hash)
    if baseline is None:
        raise CompressionError(f"no stored baseline for {base.dataset} / {base.model} (seed {base.seed}, "
                               f"{base.epochs} epochs): run `python -m compression baseline` first")
    results = pareto.groups(store.results(base.dataset, base.model))[base.hash]
    simulated = args.simulated
    answers = [(b, b.answer(results, baseline, simulated))
               for b in budgets_from(args) or pareto.default_budgets(baseline)]
    return {
        "baseline": pareto.summary(baseline, baseline), "simulated_included": simulated,
        "frontiers": {m: [pareto.summary(r, baseline) for r in pareto.frontier(results, m, baseline, simulated)]
                      for m in METRICS},
        "answers": [{"question": b.question, "kind": b.kind, "metric": b.metric, "value": b.value,
                     "answer": pareto.summary(r, baseline) if r else None} for b, r in answers],
    }


def store_command(args: argparse.Namespace) -> dict[str, Any]:
    """`store check [--repair]`: the store's health as JSON, its summary on stderr; exit 1 while damage found
    stays unrepaired."""
    from compression import health

    found = health.check(settings.home(), args.repair)
    print(found.summary(), file=sys.stderr)
    args.exit_code = 0 if found.healthy or args.repair else 1
    return asdict(found)


def import_command(args: argparse.Namespace) -> dict[str, Any]:
    """Import a model file under a name and measure it as the baseline on the data set: the import and the
    baseline Result as JSON. Every check is one line, and nothing is stored unless all pass."""
    from compression import imports, pipeline
    from compression.recipe import Recipe

    if args.input_size is not None and min(args.input_size) < 1:
        raise CompressionError(f"--input-size must be positive, got {args.input_size[0]} {args.input_size[1]}")
    request = imports.ImportRequest(args.file, args.name, args.dataset, args.arch,
                                    tuple(args.input_size) if args.input_size else None,
                                    tuple(args.mean) if args.mean else None, tuple(args.std) if args.std else None)
    timing = {"seed": args.seed, "threads": args.threads, "batch": args.batch, "provider": args.provider,
              "runtime": args.runtime}
    Recipe(dataset=args.dataset, **timing).validate()
    folders.preflight([args.dataset])
    imported = imports.import_model(request)
    found = imports.techniques(imported)
    for technique in found:
        print(f"[import] {technique.name}: {'applies' if technique.applies else 'does not apply'} - {technique.why}",
              file=sys.stderr)
    baseline = pipeline.run(Recipe(dataset=args.dataset, model=args.name, **timing), progress=print_progress)
    return {"imported": asdict(imported), "techniques": [asdict(t) for t in found], "baseline": baseline.to_dict()}


def classic_command(args: argparse.Namespace) -> dict[str, Any]:
    """Rerun a classic experiment (or serve it from the store): its rows and why-lines on stderr, the result as JSON."""
    from compression import classic

    request = classic.ClassicRequest(args.experiment, args.setting, args.epochs_scale, args.seed)
    result = classic.run(request, Store(), print_progress)
    print("\n".join(classic.lines(result)), file=sys.stderr, flush=True)
    return result.to_dict()


def worker_command(args: argparse.Namespace) -> None:
    """Serve the store's job queue with `--slots` jobs at once until SIGINT/SIGTERM (or the `--parent` process
    is gone); a line on stderr when it starts and when it stops."""
    from compression import jobs, tasks

    if args.slots < 1:
        raise CompressionError(f"--slots must be at least 1, got {args.slots}")
    store = Store()
    print(f"[worker] serving the jobs of {store.root} with {args.slots} slot(s); Ctrl-C stops it", file=sys.stderr)
    jobs.serve(store, args.slots, tasks.TASKS, args.parent, tasks.DRIVERS)
    print("[worker] stopped: its running jobs are back in the queue", file=sys.stderr)


TOOLS = {"import": import_command, "worker": worker_command, "sweep": sweep_command, "search": search_command, "report": report_command,
         "pareto": pareto_command, "profile": profile_command, "quant-sensitivity": quant_sensitivity_command,
         "store": store_command, "classes": classes_command,
         "classic": classic_command}
