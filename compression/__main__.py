"""The CLI: `python -m compression {baseline,run,sensitivity,sweep,report,pareto}`. JSON on stdout (a sweep: one
line per result), progress on stderr,
bad input is one line on stderr and exit code 2."""

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from compression.catalog import (CALIBRATIONS, DATASETS, GRANULARITIES, MODELS, PRUNE_METHODS, QUANT_MODES,
                                 QUANT_SCHEMES, STAGES)
from compression import pareto
from compression.errors import CompressionError
from compression.pareto import METRICS, UNITS, Budget
from compression.recipe import DistillSpec, PruneSpec, QuantSpec, Recipe
from compression.registry import Registry
from compression.store import Store
from compression.sweep import SweepStopped

if TYPE_CHECKING:
    from compression.train import Progress

EXIT_BAD_INPUT = 2


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def print_progress(event: "Progress") -> None:
    """Progress on stderr: stage messages, and one line per finished training epoch."""
    if event.message:
        print(f"[{event.stage}] {event.message}", file=sys.stderr, flush=True)
    elif event.batch == event.batches:
        print(f"[{event.stage}] epoch {event.epoch}/{event.epochs}  loss {event.loss:.4f}  "
              f"train acc {event.accuracy:.2%}", file=sys.stderr, flush=True)


def _order(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _entries(registry: Registry) -> str:
    """A flag's help listing each registered choice with its help text (argparse's % escaped)."""
    return "; ".join(entry.label for entry in registry.entries).replace("%", "%%")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="digits",
                        help=f"one of {', '.join(DATASETS)}, or imagefolder:PATH (default digits)")
    parser.add_argument("--model", default="cnn", help=_entries(MODELS) + " (default cnn)")
    parser.add_argument("--epochs", type=int, default=Recipe.epochs, help="baseline training epochs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data split, init and training")
    parser.add_argument("--pretrained", action="store_true", help="start from torchvision's pretrained weights")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads for latency")
    parser.add_argument("--batch", type=int, default=32, help="batch size for latency")
    parser.add_argument("--json", action="store_true", help="compact one-line JSON instead of indented")


def _add_prune(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--prune-method", choices=PRUNE_METHODS.names, required=required,
                        default=None if required else PRUNE_METHODS.names[0], help=_entries(PRUNE_METHODS))
    parser.add_argument("--prune-ratio", type=float, default=0.5, help="fraction removed, 0 … 0.95")
    parser.add_argument("--prune-steps", type=int, default=1, help="iterative prune / fine-tune rounds")
    parser.add_argument("--finetune-epochs", type=int, default=PruneSpec.finetune_epochs,
                        help="fine-tuning epochs after each round")
    parser.add_argument("--prune-lambda", type=float, default=PruneSpec.lam,
                        help="activation method: weight of magnitude vs activation, 0 … 1")
    parser.add_argument("--prune-round-to", type=int, default=1,
                        help="channel methods: round kept channels down to a multiple of N (16 suits AVX-512)")
    parser.add_argument("--prune-kd", action="store_true",
                        help=f"fine-tune on the KD loss against the baseline as teacher (T {DistillSpec.temperature:g}, "
                             f"α {DistillSpec.alpha:g}) instead of the labels alone")


def _add_quant(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quant", choices=QUANT_MODES.names, default=None, help=_entries(QUANT_MODES))
    parser.add_argument("--bits", type=int, default=QuantSpec.bits, help="fake quantization bit width, 2 … 16")
    parser.add_argument("--quant-scheme", choices=QUANT_SCHEMES, default=QuantSpec.scheme)
    parser.add_argument("--quant-granularity", choices=GRANULARITIES, default=QuantSpec.granularity)
    parser.add_argument("--quant-activations", action="store_true", help="fake: quantize activations too")
    parser.add_argument("--calibration", choices=CALIBRATIONS, default=QuantSpec.calibration)
    parser.add_argument("--calib-samples", type=int, default=QuantSpec.calib_samples,
                        help="train images used to calibrate activation ranges")
    parser.add_argument("--qat-epochs", type=int, default=QuantSpec.qat_epochs,
                        help="quantization-aware fine-tuning epochs before export (int8-static, fake)")


def _add_distill(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--distill-width", type=float, default=None,
                        help=f"student width multiplier, 0.125 … 1 (default {DistillSpec.width}, or 1 with "
                             "--distill-student)")
    parser.add_argument("--distill-student", choices=MODELS.names, default=None,
                        help="a named student model instead of the teacher's family at --distill-width")
    parser.add_argument("--distill-temperature", type=float, default=DistillSpec.temperature, help="T, 1 … 20")
    parser.add_argument("--distill-alpha", type=float, default=DistillSpec.alpha,
                        help="weight of the soft (teacher) loss, 0 … 1")
    parser.add_argument("--distill-epochs", type=int, default=DistillSpec.epochs, help="student training epochs")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m compression", description="Measure what model compression costs and buys.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _add_common(commands.add_parser("baseline", help="train, export and measure the uncompressed model"))
    run = commands.add_parser("run", help="compress the baseline by the given stages and measure it")
    _add_common(run)
    _add_prune(run, required=False)
    _add_quant(run)
    _add_distill(run)
    run.add_argument("--order", type=_order, default=STAGES, help="stage order, default distill,prune,quant")
    sens = commands.add_parser("sensitivity", help="accuracy with each layer alone pruned at ratios 0.1 … 0.9")
    _add_common(sens)
    sens.add_argument("--prune-method", choices=PRUNE_METHODS.names, default=PRUNE_METHODS.names[0])
    add_tools(commands)
    return parser


STAGE_FLAGS: dict[str, tuple[str, ...]] = {
    "prune": ("--prune-", "--finetune-epochs"),
    "quant": ("--quant", "--bits", "--calibration", "--calib-samples", "--qat-epochs"),
    "distill": ("--distill-",),
}


def stages_given(argv: Sequence[str]) -> set[str]:
    """The stages whose flags the command line names (a stage runs only when asked for)."""
    return {stage for stage, flags in STAGE_FLAGS.items() if any(arg.startswith(flags) for arg in argv)}


def recipe_from(args: argparse.Namespace, stages: set[str]) -> Recipe:
    """The Recipe the parsed arguments describe, with the given stages."""
    prune = quant = distill = None
    if "prune" in stages:
        prune = PruneSpec(method=args.prune_method, ratio=args.prune_ratio, steps=args.prune_steps,
                          finetune_epochs=args.finetune_epochs, lam=args.prune_lambda, round_to=args.prune_round_to,
                          kd=args.prune_kd)
    if "quant" in stages:
        if args.quant is None:
            raise CompressionError("quantization flags need --quant MODE (one of " + ", ".join(QUANT_MODES) + ")")
        quant = QuantSpec(mode=args.quant, bits=args.bits, scheme=args.quant_scheme,
                          granularity=args.quant_granularity, calibration=args.calibration,
                          calib_samples=args.calib_samples, qat_epochs=args.qat_epochs,
                          activations=args.quant_activations)
    if "distill" in stages:
        width = args.distill_width if args.distill_width is not None else 1.0 if args.distill_student else None
        distill = DistillSpec(width=DistillSpec.width if width is None else width, temperature=args.distill_temperature,
                              alpha=args.distill_alpha, epochs=args.distill_epochs, student=args.distill_student)
    return Recipe(dataset=args.dataset, model=args.model, seed=args.seed, epochs=args.epochs,
                  pretrained=args.pretrained, prune=prune, quant=quant, distill=distill,
                  order=getattr(args, "order", STAGES), threads=args.threads, batch=args.batch)


def execute(args: argparse.Namespace, argv: Sequence[str]) -> Any:
    """Run the parsed command and return what to print as JSON. A stored answer is served before
    torch is even imported, so a repeated command returns at once."""
    if args.command in TOOLS:
        return TOOLS[args.command](args)
    recipe = recipe_from(args, stages_given(argv) if args.command == "run" else set())
    recipe.validate()
    store = Store()
    if args.command == "sensitivity":
        key = recipe.sensitivity_key(args.prune_method)
        cached = store.get("sensitivity", key)
    else:
        key, result = recipe.hash, store.get_result(recipe.hash)
        cached = result.to_dict() if result else None
    if cached is not None:
        print(f"[store] served from the store ({key})", file=sys.stderr)
        return cached
    from compression import pipeline  # heavy: torch, torchvision, onnxruntime

    if args.command == "sensitivity":
        return pipeline.sensitivity_table(recipe, args.prune_method, store, progress=print_progress).to_dict()
    return pipeline.run(recipe, store, progress=print_progress).to_dict()


# ------------------------------------------------------------------------- sweep, report, pareto

def _add_budgets(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-kb", type=float, help="budget: the most accurate result of at most this ONNX size")
    parser.add_argument("--max-ms", type=float, help="budget: the most accurate result of at most this latency "
                                                     "p50 (normalised to the baseline)")
    parser.add_argument("--max-mflops", type=float, help="budget: the most accurate result of at most this many "
                                                         "MFLOPs per sample")
    parser.add_argument("--within-points", type=float, help="budget: the smallest, fastest and fewest-FLOPs results "
                                                            "within this many accuracy points of the baseline")


def budgets_from(args: argparse.Namespace) -> list[Budget] | None:
    """The budget questions the flags ask (limits converted to bytes / ms / FLOPs), or None for none."""
    limits = {"size": args.max_kb, "latency": args.max_ms, "flops": args.max_mflops}
    budgets = [Budget("under", metric, value * UNITS[metric][1]) for metric, value in limits.items()
               if value is not None]
    if args.within_points is not None:
        budgets += [Budget("within", metric, args.within_points) for metric in METRICS]
    return budgets or None


SWEEP_BASE_FLAGS: dict[str, type] = {"dataset": str, "model": str, "epochs": int, "seed": int, "threads": int,
                                     "batch": int}


def add_tools(commands: argparse._SubParsersAction) -> None:
    """The sweep, report and pareto subcommands."""
    sweep = commands.add_parser("sweep", help="measure every recipe of a grid; one JSON line per result")
    sweep.add_argument("--grid", required=True, help='grid JSON file, "-" for stdin, or the JSON itself: '
                       '{"base": {"epochs": 20}, "grid": {"prune.method": ["channel-l2"], "prune.ratio": [0.3, 0.5]}}')
    for name, kind in SWEEP_BASE_FLAGS.items():
        sweep.add_argument(f"--{name}", type=kind, default=None, help="base field, over the grid's base")
    sweep.add_argument("--workers", type=int, default=os.cpu_count(),
                       help="worker processes (default: the machine's cores)")
    report = commands.add_parser("report", help="write a self-contained HTML report of the stored results")
    report.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    report.add_argument("--dataset", default=None, help="only this data set's results")
    report.add_argument("--model", default=None, help="only this model's results")
    report.add_argument("--title", default="Compression report")
    report.add_argument("--json", action="store_true", help="compact one-line JSON instead of indented")
    _add_budgets(report)
    front = commands.add_parser("pareto", help="Pareto frontiers and budget answers over a stored baseline's results")
    _add_common(front)
    _add_budgets(front)


def _grid_text(value: str) -> str:
    """The grid JSON --grid names: stdin for "-", the text itself if it is an object, else a file's contents."""
    if value == "-":
        return sys.stdin.read()
    if value.lstrip().startswith("{"):
        return value
    if not Path(value).is_file():
        raise CompressionError(f"grid file {value} not found")
    return Path(value).read_text()


def sweep_command(args: argparse.Namespace) -> None:
    """Measure every recipe of the grid: each Result as one compact JSON line on stdout as it lands (exactly
    what `run --json` prints), a progress line on stderr. Bad input fails before anything starts."""
    from compression import sweep

    if args.workers < 1:
        raise CompressionError(f"--workers must be at least 1, got {args.workers}")
    given = {name: getattr(args, name) for name in SWEEP_BASE_FLAGS if getattr(args, name) is not None}
    recipes = sweep.Grid.from_json(_grid_text(args.grid), given).recipes()

    def show(event: sweep.SweepProgress) -> None:
        if event.result is not None:
            print(json.dumps(event.result.to_dict(), separators=(",", ":")), flush=True)
        print(event.line, file=sys.stderr, flush=True)
    sweep.run(recipes, Store(), args.workers, show)


def report_command(args: argparse.Namespace) -> dict[str, Any]:
    """Write the HTML report of the stored results (optionally of one data set / model); say what it holds."""
    from compression import report

    results = pareto.stored_results(Store(), args.dataset, args.model)
    if not results:
        raise CompressionError("no stored results to report: run a baseline or a sweep first")
    if not args.out.parent.is_dir():
        raise CompressionError(f"--out: folder {args.out.parent} does not exist")
    report.write(args.out, results, budgets_from(args), args.title)
    groups = pareto.groups(results)
    return {"out": str(args.out.resolve()), "results": len(results),
            "workspaces": [{"baseline": key, "dataset": group[0].dataset, "model": group[0].model,
                            "results": len(group)} for key, group in groups.items()]}


def pareto_command(args: argparse.Namespace) -> dict[str, Any]:
    """The frontiers (size, latency, FLOPs) of the stored results of the baseline the flags describe, and the
    answers to the budget flags (default: pareto.default_budgets)."""
    base = recipe_from(args, set())
    base.validate()
    store = Store()
    baseline = store.get_result(base.hash)
    if baseline is None:
        raise CompressionError(f"no stored baseline for {base.dataset} / {base.model} (seed {base.seed}, "
                               f"{base.epochs} epochs): run `python -m compression baseline` first")
    results = pareto.groups(pareto.stored_results(store, base.dataset, base.model))[base.hash]
    answers = [(b, b.answer(results, baseline)) for b in budgets_from(args) or pareto.default_budgets(baseline)]
    return {
        "baseline": pareto.summary(baseline, baseline),
        "frontiers": {m: [pareto.summary(r, baseline) for r in pareto.frontier(results, m, baseline)] for m in METRICS},
        "answers": [{"question": b.question, "kind": b.kind, "metric": b.metric, "value": b.value,
                     "answer": pareto.summary(r, baseline) if r else None} for b, r in answers],
    }


TOOLS = {"sweep": sweep_command, "report": report_command, "pareto": pareto_command}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        output = execute(args, argv)
    except CompressionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted: nothing was stored for the unfinished run", file=sys.stderr)
        return 130
    except SweepStopped as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if output is not None:
        print(json.dumps(output, separators=(",", ":")) if args.json else json.dumps(output, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
