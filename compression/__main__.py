"""The CLI: `python -m compression {baseline,run,sensitivity,sweep,report,pareto,store}`. JSON on stdout (a sweep:
one line per result), progress on stderr; bad input is one line on stderr and exit code 2; anything unexpected
is one line too, exit 1, with the traceback in a log file it names."""

import argparse
import json
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from compression import folders, settings
from compression.catalog import (CALIBRATIONS, GRANULARITIES, INT8_LAYOUTS, MODELS, PRUNE_METHODS, QUANT_MODES,
                                QUANT_SCHEMES, STAGES)
from compression.cli_flags import (EXIT_BAD_INPUT, Parser, add_common, baseline_from, entries, number, print_progress,
                                   round_to)
from compression.commands import TOOLS, add_tools
from compression.errors import CompressionError
from compression.recipe import DistillSpec, PruneSpec, QuantSpec, Recipe
from compression.store import Store
from compression.sweep import SweepInterrupted, SweepStopped

EXIT_UNEXPECTED, EXIT_INTERRUPTED = 1, 130


def _order(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _add_prune(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prune-method", choices=PRUNE_METHODS.names, default=PRUNE_METHODS.names[0],
                        help=entries(PRUNE_METHODS))
    parser.add_argument("--prune-ratio", type=number, default=0.5, help="fraction removed, 0 … 0.95")
    parser.add_argument("--prune-steps", type=int, default=1, help="iterative prune / fine-tune rounds")
    parser.add_argument("--finetune-epochs", type=int, default=PruneSpec.finetune_epochs,
                        help="fine-tuning epochs after each round (at most, with --finetune-patience)")
    parser.add_argument("--finetune-patience", type=int, default=PruneSpec.patience, metavar="N",
                        help=f"stop each round's fine-tuning after N epochs without a better validation loss, the "
                             f"best epoch kept (default {PruneSpec.patience}; 0: exactly --finetune-epochs)")
    parser.add_argument("--prune-lambda", type=number, default=PruneSpec.lam,
                        help="activation method: weight of magnitude vs activation, 0 … 1")
    parser.add_argument("--prune-round-to", type=round_to, default=1,
                        help="channel methods: round kept channels down to a multiple of N (16 suits AVX-512), or "
                             "auto: per layer, the fastest count of at least the asked on this CPU's measured "
                             "latency staircase")
    parser.add_argument("--prune-kd", action=argparse.BooleanOptionalAction, default=PruneSpec.kd,
                        help=f"fine-tune on the KD loss against the baseline as teacher (T {DistillSpec.temperature:g}, "
                             f"α {DistillSpec.alpha:g}) instead of the labels alone (default "
                             f"{'on' if PruneSpec.kd else 'off'})")


def _add_quant(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quant", choices=QUANT_MODES.names, default=None, help=entries(QUANT_MODES))
    parser.add_argument("--bits", type=int, default=QuantSpec.bits, help="fake quantization bit width, 2 … 16")
    parser.add_argument("--quant-scheme", choices=QUANT_SCHEMES, default=QuantSpec.scheme)
    parser.add_argument("--quant-granularity", choices=GRANULARITIES, default=QuantSpec.granularity)
    parser.add_argument("--quant-activations", action="store_true", help="fake: quantize activations too")
    parser.add_argument("--calibration", choices=CALIBRATIONS, default=QuantSpec.calibration)
    parser.add_argument("--calib-samples", type=int, default=QuantSpec.calib_samples,
                        help="train images used to calibrate activation ranges")
    parser.add_argument("--qat-epochs", type=int, default=QuantSpec.qat_epochs,
                        help="quantization-aware fine-tuning epochs before export (int8-static, fake; at most, with "
                             "--qat-patience)")
    parser.add_argument("--qat-patience", type=int, default=QuantSpec.qat_patience, metavar="N",
                        help=f"stop QAT after N epochs without a better validation loss, the best epoch kept "
                             f"(default {QuantSpec.qat_patience}; 0: exactly --qat-epochs)")
    parser.add_argument("--quant-layout", choices=tuple(INT8_LAYOUTS), default=QuantSpec.layout,
                        help="int8-static: " + "; ".join(f"{k}: {v}" for k, v in INT8_LAYOUTS.items()))
    parser.add_argument("--max-drop", type=number, default=None, metavar="PTS",
                        help="int8-static mixed precision: keep the most sensitive layers in float until validation "
                             "accuracy is at most PTS points below the float model's (measured per layer)")


def _add_distill(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--distill-width", type=number, default=None,
                        help=f"student width multiplier, 0.125 … 1 (default {DistillSpec.width}, or 1 with "
                             "--distill-student)")
    parser.add_argument("--distill-student", choices=MODELS.names, default=None,
                        help="a named student model instead of the teacher's family at --distill-width")
    parser.add_argument("--distill-temperature", type=number, default=DistillSpec.temperature, help="T, 1 … 20")
    parser.add_argument("--distill-alpha", type=number, default=DistillSpec.alpha,
                        help="weight of the soft (teacher) loss, 0 … 1")
    parser.add_argument("--distill-epochs", type=int, default=DistillSpec.epochs,
                        help="student training epochs (at most, with --distill-patience)")
    parser.add_argument("--distill-patience", type=int, default=DistillSpec.patience, metavar="N",
                        help=f"stop the student's (and the control's) training after N epochs without a better "
                             f"validation loss, the best epoch kept (default {DistillSpec.patience}; 0: exactly "
                             f"--distill-epochs)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m compression", description="Measure what model compression costs and buys.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_common(commands.add_parser("baseline", help="train, export and measure the uncompressed model"))
    run = commands.add_parser("run", help="compress the baseline by the given stages and measure it")
    add_common(run)
    _add_prune(run)
    _add_quant(run)
    _add_distill(run)
    run.add_argument("--order", type=_order, default=STAGES, help="stage order, default distill,prune,quant")
    sens = commands.add_parser("sensitivity", help="accuracy with each layer alone pruned at ratios 0.1 … 0.9")
    add_common(sens)
    sens.add_argument("--prune-method", choices=PRUNE_METHODS.names, default=PRUNE_METHODS.names[0])
    add_tools(commands)
    return parser


STAGE_FLAGS: dict[str, tuple[str, ...]] = {
    "prune": ("--prune-", "--finetune-epochs", "--finetune-patience", "--no-prune-"),
    "quant": ("--quant", "--bits", "--calibration", "--calib-samples", "--qat-epochs", "--qat-patience", "--max-drop"),
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
                          kd=args.prune_kd, patience=args.finetune_patience)
    if "quant" in stages:
        if args.quant is None:
            raise CompressionError("quantization flags need --quant MODE (one of " + ", ".join(QUANT_MODES) + ")")
        quant = QuantSpec(mode=args.quant, bits=args.bits, scheme=args.quant_scheme,
                          granularity=args.quant_granularity, calibration=args.calibration,
                          calib_samples=args.calib_samples, qat_epochs=args.qat_epochs, qat_patience=args.qat_patience,
                          activations=args.quant_activations, layout=args.quant_layout, max_drop=args.max_drop)
    if "distill" in stages:
        width = args.distill_width if args.distill_width is not None else 1.0 if args.distill_student else None
        distill = DistillSpec(width=DistillSpec.width if width is None else width, temperature=args.distill_temperature,
                              alpha=args.distill_alpha, epochs=args.distill_epochs, student=args.distill_student,
                              patience=args.distill_patience)
    return replace(baseline_from(args), prune=prune, quant=quant, distill=distill,
                   order=getattr(args, "order", STAGES))


def execute(args: argparse.Namespace, argv: Sequence[str]) -> Any:
    """Run the parsed command and return what to print as JSON. A stored answer is served before
    torch is even imported, so a repeated command returns at once."""
    if args.command in TOOLS:
        return TOOLS[args.command](args)
    if getattr(args, "device", None):  # the processes this one starts (sweep workers, none here) inherit it
        os.environ["COMPRESSION_DEVICE"] = args.device
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
    folders.preflight([recipe.dataset])  # an image folder it cannot use: refused before torch loads
    from compression import pipeline  # heavy: torch, torchvision, onnxruntime

    if args.command == "sensitivity":
        return pipeline.sensitivity_table(recipe, args.prune_method, store, progress=print_progress).to_dict()
    return pipeline.run(recipe, store, progress=print_progress).to_dict()


def _log_unexpected(exc: BaseException) -> Path:
    """Write `exc`'s traceback to a log file (in COMPRESSION_HOME/logs, else the temp folder); its path."""
    name = f"cli-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}.log"
    text = "".join(traceback.format_exception(exc))
    for folder in (settings.home() / "logs", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
            return folder / name
        except OSError:
            continue
    return Path("(no writable folder for the log)")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="[%(name)s] %(message)s", level=logging.WARNING, stream=sys.stderr)
    try:
        output = execute(args, argv)
    except CompressionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, SweepInterrupted) as exc:
        what = str(exc) if isinstance(exc, SweepInterrupted) else "nothing was stored for the unfinished run"
        print(f"interrupted: {what}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SweepStopped as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNEXPECTED
    except Exception as exc:  # noqa: BLE001 - the last resort: a bug is one line and a log, not a wall of text
        print(f"error: unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              f"(traceback in {_log_unexpected(exc)})", file=sys.stderr)
        return EXIT_UNEXPECTED
    if output is not None:
        print(json.dumps(output, separators=(",", ":")) if args.json else json.dumps(output, indent=2))
    return getattr(args, "exit_code", 0)


if __name__ == "__main__":
    sys.exit(main())
