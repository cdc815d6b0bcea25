"""Workspaces: the stored results of one baseline recipe (same data, model, training and timing setup), the
only results that are comparable with each other. Import-light (no torch), so that the store-only pages and
the CLI read them at once."""

from dataclasses import dataclass

from compression import pareto
from compression.recipe import Recipe
from compression.result import Result
from compression.store import Store


@dataclass(frozen=True)
class Workspace:
    """A baseline's stored Result (None while it is not measured) and every stored result compressed from it,
    oldest first (the baseline excluded)."""

    baseline: Result | None
    results: list[Result]

    def single_stage(self, stage: str) -> list[Result]:
        """The results of recipes with `stage` alone (e.g. every pruning of this baseline), oldest first."""
        return [r for r in self.results if Recipe.from_dict(r.recipe).stages == (stage,)]

    def without(self, recipe_hash: str) -> list[Result]:
        """The results other than the one of `recipe_hash`."""
        return [r for r in self.results if r.recipe_hash != recipe_hash]


def load(recipe: Recipe, store: Store) -> Workspace:
    """The workspace of `recipe`'s baseline, read from the store."""
    base = recipe.baseline()
    group = pareto.groups(store.results(base.dataset, base.model))
    return Workspace(store.get_result(base.hash), [r for r in group.get(base.hash, []) if r.recipe_hash != base.hash])


def measured(store: Store) -> dict[str, Workspace]:
    """Every workspace whose baseline is stored, by baseline recipe hash, from the results whose artifacts are
    present."""
    groups = pareto.groups(store.results())
    return {key: Workspace(baseline, [r for r in results if r.recipe_hash != key])
            for key, results in groups.items() if (baseline := pareto.baseline_of(results)) is not None}
