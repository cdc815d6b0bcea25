"""The CLI's shared pieces: a parser whose errors are one line and exit 2, number types that refuse NaN and
infinities, the flags every recipe command takes, the budget flags, and progress lines on stderr."""

import argparse
import math
import sys
from typing import TYPE_CHECKING, NoReturn

from compression import folders
from compression.catalog import DATASETS, MODELS, PROVIDERS, ROUND_TO_AUTO, RUNTIMES
from compression.pareto import METRICS, UNITS, Budget
from compression.recipe import Recipe
from compression.registry import Registry

if TYPE_CHECKING:
    from compression.train import Progress

EXIT_BAD_INPUT = 2


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def number(text: str) -> float:
    """A finite float from the command line (argparse's float takes 'nan' and 'inf')."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def round_to(text: str) -> int:
    """--prune-round-to: 'auto' (ROUND_TO_AUTO: counts chosen on the measured latency staircase) or a multiple
    of at least 1."""
    if text.strip().lower() == "auto":
        return ROUND_TO_AUTO
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be auto or a whole number of at least 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be auto or a whole number of at least 1, got {text!r}")
    return value


def entries(registry: Registry) -> str:
    """A flag's help listing each registered choice with its help text (argparse's % escaped)."""
    return "; ".join(entry.label for entry in registry.entries).replace("%", "%%")


def add_common(parser: argparse.ArgumentParser) -> None:
    """The flags of a baseline recipe: data, model, training, timing setup, output."""
    parser.add_argument("--dataset", default="digits",
                        help=f"one of {', '.join(DATASETS)}, or imagefolder:PATH (default digits)")
    parser.add_argument("--model", default="cnn", help=entries(MODELS) + " (default cnn)")
    parser.add_argument("--epochs", type=int, default=Recipe.epochs, help="baseline training epochs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data split, init and training")
    parser.add_argument("--pretrained", action="store_true", help="start from torchvision's pretrained weights")
    add_timing(parser)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default=None,
                        help="where training, fine-tuning and distillation run (default auto: CUDA, else MPS, else "
                             "CPU; also $COMPRESSION_DEVICE)")
    parser.add_argument("--json", action="store_true", help="compact one-line JSON instead of indented")


def add_timing(parser: argparse.ArgumentParser) -> None:
    """The flags of how the deployed file is measured: threads, batch, execution provider, runtime."""
    parser.add_argument("--threads", type=int, default=Recipe.threads, help="onnxruntime intra-op threads for latency")
    parser.add_argument("--batch", type=int, default=Recipe.batch, help="batch size for latency")
    parser.add_argument("--provider", choices=tuple(PROVIDERS), default=Recipe.provider,
                        help="onnxruntime execution provider latency is timed on (default cpu; accuracy is always "
                             "scored on the CPU provider); one this onnxruntime lacks is refused")
    parser.add_argument("--runtime", choices=tuple(RUNTIMES), default=Recipe.runtime,
                        help="what the deployed file and its baseline are measured in, accuracy and latency: "
                             + "; ".join(f"{name}: {text}" for name, text in RUNTIMES.items()))


def baseline_from(args: argparse.Namespace) -> Recipe:
    """The baseline Recipe of the common flags (an image folder's keyed by its contents now)."""
    return folders.pinned(Recipe(dataset=args.dataset, model=args.model, seed=args.seed, epochs=args.epochs,
                                 pretrained=args.pretrained, threads=args.threads, batch=args.batch,
                                 provider=args.provider, runtime=args.runtime))


def add_budgets(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-kb", type=number, help="budget: the most accurate result of at most this ONNX size")
    parser.add_argument("--max-ms", type=number, help="budget: the most accurate result of at most this latency "
                                                      "p50 (normalised to the baseline)")
    parser.add_argument("--max-mflops", type=number, help="budget: the most accurate result of at most this many "
                                                          "MFLOPs per sample")
    parser.add_argument("--within-points", type=number, help="budget: the smallest, fastest and fewest-FLOPs "
                                                             "results within this many accuracy points of the "
                                                             "baseline")


def budgets_from(args: argparse.Namespace) -> list[Budget] | None:
    """The budget questions the flags ask (limits converted to bytes / ms / FLOPs), or None for none."""
    limits = {"size": args.max_kb, "latency": args.max_ms, "flops": args.max_mflops}
    budgets = [Budget("under", metric, value * UNITS[metric][1]) for metric, value in limits.items()
               if value is not None]
    if args.within_points is not None:
        budgets += [Budget("within", metric, args.within_points) for metric in METRICS]
    return budgets or None


def print_progress(event: "Progress") -> None:
    """Progress on stderr: stage messages, and one line per finished training epoch."""
    if event.message:
        print(f"[{event.stage}] {event.message}", file=sys.stderr, flush=True)
    elif event.batch == event.batches:
        print(f"[{event.stage}] epoch {event.epoch}/{event.epochs}  loss {event.loss:.4f}  "
              f"train acc {event.accuracy:.2%}", file=sys.stderr, flush=True)
