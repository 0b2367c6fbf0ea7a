"""Model evolution by iterative merging on the zoo: top-k greedy merging, optionally guided by kinship
(Hu et al. 2024, "Exploring Model Kinship for Merging Large Language Models").

A pool starts with a zoo family's full-weight models (quantized copies left out). Each round:
1. the k fittest models (mean held-out accuracy over all zoo tasks) are merged pairwise, every pair once,
   onto the family base, with the method the advisor's rules choose from the pair's sign conflicts;
2. with kinship guidance, the fittest model is also merged with the pool model least related to it
   (lowest Pearson kinship of task vectors) that it was not merged with yet: exploration, which keeps
   evolution going when the top models have become near copies of each other (the greedy plateau);
3. the merges are evaluated and join the pool.
The curve is the best and the top-k mean fitness after each round.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import torch

from analysis.kinship import KinshipConfig, all_pairs
from analysis.merge import choose_method
from analysis.merge_methods import apply_method
from analysis.zoo import TASKS, load_state
from analysis.zoo_model import StateDict
from analysis.zoo_tasks import accuracy


class EvolveError(ValueError):
    """Why evolution cannot run (no zoo family, too few models), in one line."""


@dataclass(frozen=True)
class EvolveConfig:
    rounds: int = 5  # generations
    k: int = 3  # the k fittest are merged pairwise each round
    kinship: bool = True  # also merge the fittest with its least related model (exploration)


@dataclass(frozen=True)
class RoundStats:
    round: int
    best: float  # fitness of the fittest model in the pool
    top_mean: float  # mean fitness of the k fittest
    merges: int  # merges made this round
    best_model: str
    explored: str | None = None  # the exploration merge of this round, if any


@dataclass(frozen=True)
class EvolveCurve:
    family: str
    pool_size: int
    config: EvolveConfig
    rounds: list[RoundStats] = field(default_factory=list)
    recipes: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # evolved -> (a, b, method)

    def recipe(self, model: str) -> str:
        """How a model was made, as nested merges: `slerp(a, ties(b, c))`."""
        if model not in self.recipes:
            return model
        a, b, method = self.recipes[model]
        return f"{method}({self.recipe(a)}, {self.recipe(b)})"

    def as_dict(self) -> dict:
        return {"family": self.family, "pool_size": self.pool_size, "config": asdict(self.config),
                "rounds": [asdict(r) for r in self.rounds],
                "best_recipe": self.recipe(self.rounds[-1].best_model) if self.rounds else None}  # fmt: skip


def fitness(sd: StateDict) -> float:
    """Mean held-out accuracy over every zoo task: the multi-task objective evolution maximises."""
    return round(sum(accuracy(sd, t) for t in TASKS) / len(TASKS), 4)


def _flat(sd: StateDict) -> torch.Tensor:
    return torch.cat([sd[n].float().flatten() for n in sorted(sd)])  # (n_coords,)


def _values(km: dict[str, torch.Tensor], i: int, j: int) -> dict[str, float]:
    return {m: float(km[m][i, j]) for m in ("sign_conflict", "cosine")}


def evolve(
    base: StateDict, pool: dict[str, StateDict], config: EvolveConfig, *, family: str = "zoo"
) -> EvolveCurve:
    """Run evolution from `pool` (name -> weights) with `base` as θ₀; pure computation, no I/O."""
    if len(pool) < 2:
        raise EvolveError(f"{family}: evolution needs at least 2 models, found {len(pool)}")
    models = dict(pool)
    fit = {m: fitness(sd) for m, sd in models.items()}
    merged: set[frozenset[str]] = set()
    recipes: dict[str, tuple[str, str, str]] = {}  # evolved model -> (parent, parent, method)
    curve = EvolveCurve(family, len(pool), config, recipes=recipes)
    base_flat = _flat(base)

    def stats(r: int, merges: int, explored: str | None) -> RoundStats:
        ranked = sorted(fit, key=lambda m: (-fit[m], m))
        top = ranked[: config.k]
        return RoundStats(
            r, fit[ranked[0]], round(sum(fit[m] for m in top) / len(top), 4), merges, ranked[0], explored
        )

    def kin(names: list[str]) -> dict[str, torch.Tensor]:
        x = torch.stack([_flat(models[n]) for n in names])  # (n, n_coords)
        return all_pairs(
            x, base_flat, device="cpu", config=KinshipConfig(), metrics=("pearson", "cosine", "sign_conflict")
        )

    def merge(a: str, b: str, values: dict[str, float]) -> str:
        method, _ = choose_method(values)
        child = f"evolved/r{r}-{sum(m.startswith(f'evolved/r{r}-') for m in models) + 1}"
        recipes[child] = (a, b, method)
        models[child] = apply_method(method, base, [models[a], models[b]])
        fit[child] = fitness(models[child])
        merged.add(frozenset((a, b)))
        return child

    curve.rounds.append(stats(0, 0, None))
    for r in range(1, config.rounds + 1):
        ranked = sorted(fit, key=lambda m: (-fit[m], m))
        top = ranked[: config.k]
        pairs = [(a, b) for a, b in itertools.combinations(top, 2) if frozenset((a, b)) not in merged]
        explore = None
        names = sorted(set(top) | (set(ranked) if config.kinship else set()))
        km = kin(names)
        idx = {n: i for i, n in enumerate(names)}

        if config.kinship:
            best = top[0]
            others = [
                m
                for m in ranked
                if m != best and frozenset((best, m)) not in merged and (best, m) not in pairs
            ]
            if others:
                explore = min(others, key=lambda m: (float(km["pearson"][idx[best], idx[m]]), m))
        made = [merge(a, b, _values(km, idx[a], idx[b])) for a, b in pairs]
        explored = merge(top[0], explore, _values(km, idx[top[0]], idx[explore])) if explore else None
        curve.rounds.append(stats(r, len(made) + (explored is not None), explored))
    return curve


def zoo_family_pool(
    con: duckdb.DuckDBPyConnection, family: str | None
) -> tuple[str, StateDict, dict[str, StateDict]]:
    """A zoo family from the atlas: its root's weights and its members' (quantized copies and the root left out)."""
    roots = con.execute(
        """
        SELECT f.root, count(*) AS n FROM family_members f JOIN models m ON m.id = f.id
        WHERE m.source = 'zoo' AND m.location IS NOT NULL GROUP BY f.root ORDER BY n DESC, f.root
        """
    ).fetchall()
    if not roots:
        raise EvolveError(
            "no zoo models in the atlas: run `hubatlas demo` or `hubatlas zoo DIR && hubatlas scan DIR`"
        )
    root = family or roots[0][0]
    if root not in {r[0] for r in roots}:
        raise EvolveError(f"{root}: not the root of a zoo family (roots: {', '.join(r[0] for r in roots)})")
    rows = con.execute(
        """
        SELECT m.id, m.location FROM family_members f JOIN models m ON m.id = f.id
        WHERE f.root = ? AND m.source = 'zoo' AND m.location IS NOT NULL
          AND m.id NOT IN (SELECT child FROM lineage WHERE relation IN ('quantized', 'conversion'))
        ORDER BY m.id
        """,
        [root],
    ).fetchall()
    where = dict(rows)
    if root not in where:
        raise EvolveError(f"{root}: the family base has no local weights")
    base = load_state(Path(where.pop(root)))
    return root, base, {m: load_state(Path(loc)) for m, loc in where.items()}


def evolve_zoo(
    con: duckdb.DuckDBPyConnection,
    *,
    rounds: int = 5,
    k: int = 3,
    family: str | None = None,
    kinship: bool = True,
) -> EvolveCurve:
    """Evolve a zoo family of the atlas (the largest unless `family` names its root) and return the curve."""
    root, base, pool = zoo_family_pool(con, family)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest and leaves the other cores alone
    try:
        return evolve(base, pool, EvolveConfig(rounds=rounds, k=k, kinship=kinship), family=root)
    finally:
        torch.set_num_threads(threads)
