"""Recipes in words, one wording for the app, the HTML report and the CLI: a workspace ('digits / cnn · seed 0
· 20 epochs'), a stage ('prune channel-l2 50% (10 ft epochs)') and a whole recipe, stage by stage in its
order. Import-light (no torch)."""

from typing import Any

from compression.catalog import ROUND_TO_AUTO
from compression.recipe import PruneSpec, Recipe

STAGE_NAMES = {"baseline": "baseline", "distill": "distil", "prune": "prune", "quant": "quantize"}


def _recipe(recipe: Recipe | dict[str, Any]) -> Recipe:
    return Recipe.from_dict(recipe) if isinstance(recipe, dict) else recipe


def workspace(value: Recipe | dict[str, Any]) -> str:
    """'digits / cnn · seed 0 · 20 epochs' (and the timing setup when it is not the default)."""
    r = _recipe(value)
    label = f"{r.dataset} / {r.model} · seed {r.seed} · {r.epochs} epochs"
    if (r.threads, r.batch) != (Recipe.threads, Recipe.batch):
        label += f" · {r.threads} thread(s), batch {r.batch}"
    if r.provider != Recipe.provider:
        label += f" · timed on {r.provider}"
    if r.runtime != Recipe.runtime:
        label += f" · in {r.runtime}"
    return label


def _epochs(epochs: int, patience: int) -> str:
    """An epoch count: '≤ 640' when a plateau may stop it sooner."""
    return f"≤ {epochs}" if patience and epochs else str(epochs)


def _patience(epochs: int, patience: int) -> str:
    return f", patience {patience}" if patience and epochs else ""


def prune_settings(p: PruneSpec) -> str:
    """A pruning's settings besides its method and ratio, e.g. '2 rounds, 10 ft epochs with KD'."""
    extra = [f"{p.steps} rounds"] if p.steps > 1 else []
    extra.append(f"{_epochs(p.finetune_epochs, p.patience)} ft epochs" + (" with KD" if p.kd and p.finetune_epochs else "")
                 + _patience(p.finetune_epochs, p.patience))
    if p.technique.uses_lambda:
        extra.append(f"λ {p.lam:g}")
    if p.round_to > 1:
        extra.append(f"round to {p.round_to}")
    elif p.round_to == ROUND_TO_AUTO:
        extra.append("channels fit to the measured latency staircase")
    return ", ".join(extra)


def stage(recipe: Recipe, name: str) -> str:
    """One stage of a recipe in words, e.g. 'prune channel-l2 50% (10 ft epochs)'."""
    if name == "distill":
        d = recipe.distill
        width = f" ×{d.width:g}" if d.width != 1.0 else ""
        return (f"distil into {d.student or recipe.model}{width} (T {d.temperature:g}, α {d.alpha:g}, "
                f"{_epochs(d.epochs, d.patience)} epochs{_patience(d.epochs, d.patience)})")
    if name == "prune":
        p = recipe.prune
        return f"prune {p.method} {p.ratio:.0%} ({prune_settings(p)})"
    q = recipe.quant
    if q.simulated:
        what = f"{q.bits}-bit simulated, {q.scheme}, {q.granularity}" + (", activations too" if q.activations else "")
    elif q.calibrates:
        what = f"{q.mode.replace('-', ' ')}, {q.granularity}, {q.calibration} on {q.calib_samples} images"
    else:
        what = q.mode
    layout = f", {q.layout} layout" if q.technique.uses_layout and q.layout != "auto" else ""
    qat = f", QAT {_epochs(q.qat_epochs, q.qat_patience)} epochs{_patience(q.qat_epochs, q.qat_patience)}" if q.qat_epochs else ""
    mixed = f", sensitive layers in float within {q.max_drop:g} pt" if q.max_drop is not None else ""
    return f"quantize {what}{layout}{mixed}{qat}"


def recipe(value: Recipe | dict[str, Any]) -> str:
    """A recipe's stages in words, in their order ('baseline (uncompressed)' for none)."""
    r = _recipe(value)
    return " → ".join(stage(r, s) for s in r.stages) or "baseline (uncompressed)"


def order(value: Recipe | dict[str, Any]) -> str:
    """The stage order, e.g. 'prune → quantize' ('—' for a baseline)."""
    return " → ".join(STAGE_NAMES[s] for s in _recipe(value).stages) or "—"
