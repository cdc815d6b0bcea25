"""The CLI: `python -m compression {baseline,run,sensitivity}`. JSON on stdout, progress on stderr,
bad input is one line on stderr and exit code 2."""

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from compression.catalog import DATASETS, MODELS, PRUNE_METHODS, STAGES
from compression.errors import CompressionError
from compression.recipe import PruneSpec, Recipe
from compression.store import Store

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


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="digits",
                        help=f"one of {', '.join(DATASETS)}, or imagefolder:PATH (default digits)")
    parser.add_argument("--model", default="cnn", help=f"one of {', '.join(MODELS)} (default cnn)")
    parser.add_argument("--epochs", type=int, default=Recipe.epochs, help="baseline training epochs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data split, init and training")
    parser.add_argument("--pretrained", action="store_true", help="start from torchvision's pretrained weights")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads for latency")
    parser.add_argument("--batch", type=int, default=32, help="batch size for latency")
    parser.add_argument("--json", action="store_true", help="compact one-line JSON instead of indented")


def _add_prune(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--prune-method", choices=PRUNE_METHODS, required=required,
                        default=None if required else "l1-unstructured")
    parser.add_argument("--prune-ratio", type=float, default=0.5, help="fraction removed, 0 … 0.95")
    parser.add_argument("--prune-steps", type=int, default=1, help="iterative prune / fine-tune rounds")
    parser.add_argument("--finetune-epochs", type=int, default=PruneSpec.finetune_epochs,
                        help="fine-tuning epochs after each round")
    parser.add_argument("--prune-lambda", type=float, default=PruneSpec.lam,
                        help="activation method: weight of magnitude vs activation, 0 … 1")
    parser.add_argument("--prune-round-to", type=int, default=1,
                        help="channel methods: round kept channels down to a multiple of N (16 suits AVX-512)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m compression", description="Measure what model compression costs and buys.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _add_common(commands.add_parser("baseline", help="train, export and measure the uncompressed model"))
    run = commands.add_parser("run", help="compress the baseline by the given stages and measure it")
    _add_common(run)
    _add_prune(run, required=False)
    run.add_argument("--order", type=_order, default=STAGES, help="stage order, default distill,prune,quant")
    sens = commands.add_parser("sensitivity", help="accuracy with each layer alone pruned at ratios 0.1 … 0.9")
    _add_common(sens)
    sens.add_argument("--prune-method", choices=PRUNE_METHODS, default="l1-unstructured")
    return parser


def recipe_from(args: argparse.Namespace, prune: bool) -> Recipe:
    """The Recipe the parsed arguments describe."""
    spec = None
    if prune:
        spec = PruneSpec(method=args.prune_method, ratio=args.prune_ratio, steps=args.prune_steps,
                         finetune_epochs=args.finetune_epochs, lam=args.prune_lambda,
                         round_to=args.prune_round_to)
    return Recipe(dataset=args.dataset, model=args.model, seed=args.seed, epochs=args.epochs,
                  pretrained=args.pretrained, prune=spec, order=getattr(args, "order", STAGES),
                  threads=args.threads, batch=args.batch)


def _stage_given(argv: Sequence[str]) -> bool:
    """Whether the command line names a pruning flag (an explicit stage), as opposed to defaults only."""
    return any(arg.startswith(("--prune-", "--finetune-epochs")) for arg in argv)


def execute(args: argparse.Namespace, argv: Sequence[str]) -> Any:
    """Run the parsed command and return what to print as JSON. A stored answer is served before
    torch is even imported, so a repeated command returns at once."""
    recipe = recipe_from(args, prune=args.command == "run" and _stage_given(argv))
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
        return pipeline.sensitivity_table(recipe, args.prune_method, store, progress=print_progress)
    return pipeline.run(recipe, store, progress=print_progress).to_dict()


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
    print(json.dumps(output, separators=(",", ":")) if args.json else json.dumps(output, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
