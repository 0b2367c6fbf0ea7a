"""Ecosystem analytics: how traits (licence, languages, card length, tags) change along lineage edges.

The measurements of "Anatomy of a Machine Learning Ecosystem" (Laufer et al. 2025) over the atlas's public
views (`families`, `family_depths`, `family_members`, `trait_drift`, `model_traits`): family sizes and
depths, licence and language drift from parent to child, card length per generation, and whether siblings
are more alike than parent and child. Plain functions of a DuckDB connection returning frozen dataclasses
or small DataFrames, so a notebook, the app or a test can call them.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations

import duckdb
import pandas as pd

# How open a licence class is, for the direction of a change (classes from the `license_class` macro);
# 'none' and 'other' say nothing about openness and are left out.
LICENSE_OPENNESS: dict[str, int] = {"permissive": 3, "copyleft": 2, "non-commercial": 1, "restricted": 1}
LICENSE_CLASSES: tuple[str, ...] = ("permissive", "copyleft", "non-commercial", "restricted", "other", "none")

# Tags that are not traits of a model: lineage itself (`base_model:*`) and where the Hub hosts it.
NON_TRAIT_TAG_PREFIXES: tuple[str, ...] = ("base_model:", "region:")

# Per-trait agreement compared between parent/child and sibling pairs (columns of `model_traits`).
AGREEMENT_TRAITS: tuple[str, ...] = (
    "license",
    "license_class",
    "pipeline_tag",
    "library_name",
    "english_only",
)


# ---------------------------------------------------------------- family sizes and depths


@dataclass(frozen=True)
class FamilyShape:
    """Sizes and depths of the families with at least `min_size` members (a lone model is a family of 1)."""

    families: int
    singletons: int  # families of one model: no stored parent and no child
    members: int  # sum of sizes (a merge of two families counts in both)
    median_size: float
    largest_root: str | None
    largest_size: int
    max_depth: int
    depth_members: tuple[tuple[int, int], ...]  # (depth, members at that depth over all families)
    size_quantiles: tuple[tuple[float, float], ...]  # (q, size) for q in 0.5, 0.9, 0.99


def family_shape(con: duckdb.DuckDBPyConnection, *, min_size: int = 2) -> FamilyShape:
    """Family size and depth distribution from the `families` and `family_depths` views."""
    rows = con.execute("SELECT root, size, depth FROM families ORDER BY size DESC, root").fetchall()
    big = [r for r in rows if r[1] >= min_size]
    singletons = sum(r[1] == 1 for r in rows)
    hist = con.execute(
        "SELECT d.depth, sum(d.n)::BIGINT FROM family_depths d JOIN families f USING (root) "
        "WHERE f.size >= ? GROUP BY d.depth ORDER BY d.depth",
        [min_size],
    ).fetchall()
    sizes = sorted(r[1] for r in big)
    return FamilyShape(
        families=len(big),
        singletons=singletons,
        members=sum(sizes),
        median_size=float(statistics.median(sizes)) if sizes else 0.0,
        largest_root=big[0][0] if big else None,
        largest_size=big[0][1] if big else 0,
        max_depth=max((r[2] for r in big), default=0),
        depth_members=tuple((int(d), int(n)) for d, n in hist),
        size_quantiles=tuple((q, _quantile(sizes, q)) for q in (0.5, 0.9, 0.99)) if sizes else (),
    )


def _quantile(sorted_values: list[int] | list[float], q: float) -> float:
    """Linear-interpolated quantile of an already sorted list."""
    pos = q * (len(sorted_values) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def sign_test(k: int, n: int) -> float | None:
    """Two-sided exact binomial p-value of `k` of `n` changes going one way when both ways are equally likely.

    The test for a paired drift: McNemar's exact test on the discordant pairs of a 2×2 parent/child table.
    """
    if n <= 0:
        return None
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1)) / 2**n
    return min(1.0, 2 * tail)


# ---------------------------------------------------------------- licence drift


def license_transitions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Parent licence class (rows) → child licence class (columns): edge counts over `trait_drift`.

    Edges to placeholder parents (not stored, so no licence is known) are left out; 'none' is a model that
    states no licence.
    """
    rows = con.execute(
        "SELECT parent_license_class, child_license_class, count(*) FROM trait_drift "
        "WHERE parent_license_class IS NOT NULL AND child_license_class IS NOT NULL GROUP BY ALL"
    ).fetchall()
    table = pd.DataFrame(0, index=list(LICENSE_CLASSES), columns=list(LICENSE_CLASSES), dtype=int)
    for parent, child, n in rows:
        table.loc[parent, child] += n
    table.index.name, table.columns.name = "parent", "child"
    return table


@dataclass(frozen=True)
class LicenseDrift:
    """Direction of licence changes along edges where both licences are stated."""

    edges_both_stated: int
    changed: int  # the licence id differs
    class_changed: int  # the class differs and both classes have an openness rank
    toward_open: int  # e.g. restricted → permissive
    toward_closed: int  # e.g. permissive → restricted
    dropped: int  # parent states a licence, the child none
    top_changes: tuple[tuple[str, str, int], ...]  # most frequent (parent licence, child licence, edges)

    @property
    def open_share(self) -> float | None:
        """Share of ranked class changes that go toward a more open licence."""
        n = self.toward_open + self.toward_closed
        return self.toward_open / n if n else None

    @property
    def p_value(self) -> float | None:
        """Sign test: are changes toward open and toward closed equally likely?"""
        return sign_test(self.toward_open, self.toward_open + self.toward_closed)


def license_drift(con: duckdb.DuckDBPyConnection, *, top: int = 8) -> LicenseDrift:
    """Count licence changes from parent to child and their direction (`LICENSE_OPENNESS`)."""
    rows = con.execute(
        "SELECT lower(parent_license), lower(child_license), parent_license_class, child_license_class, "
        "count(*) FROM trait_drift WHERE parent_license_class IS NOT NULL GROUP BY ALL"
    ).fetchall()
    both = changed = class_changed = toward_open = toward_closed = dropped = 0
    changes: dict[tuple[str, str], int] = defaultdict(int)
    for p_lic, c_lic, p_cls, c_cls, n in rows:
        if p_lic and not c_lic:
            dropped += n
        if not (p_lic and c_lic):
            continue
        both += n
        if p_lic != c_lic:
            changed += n
            changes[(p_lic, c_lic)] += n
        rp, rc = LICENSE_OPENNESS.get(p_cls), LICENSE_OPENNESS.get(c_cls)
        if rp is not None and rc is not None and rp != rc:
            class_changed += n
            toward_open += n if rc > rp else 0
            toward_closed += n if rc < rp else 0
    ranked = sorted(changes.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return LicenseDrift(both, changed, class_changed, toward_open, toward_closed, dropped,
                        tuple((p, c, n) for (p, c), n in ranked))  # fmt: skip


# ---------------------------------------------------------------- language drift


@dataclass(frozen=True)
class LanguageDrift:
    """English-only versus other language sets, parent → child, where both cards name languages."""

    edges_both_stated: int
    en_to_en: int
    en_to_other: int  # an English-only parent, a child that (also) names other languages
    other_to_en: int  # a parent naming other languages, an English-only child
    other_to_other: int

    @property
    def to_english_rate(self) -> float | None:
        """P(child English-only | parent not English-only)."""
        n = self.other_to_en + self.other_to_other
        return self.other_to_en / n if n else None

    @property
    def from_english_rate(self) -> float | None:
        """P(child not English-only | parent English-only)."""
        n = self.en_to_en + self.en_to_other
        return self.en_to_other / n if n else None

    @property
    def p_value(self) -> float | None:
        """McNemar's exact test: is a change toward English-only as likely as one away from it?"""
        return sign_test(self.other_to_en, self.other_to_en + self.en_to_other)

    @property
    def english_only_share_parents(self) -> float | None:
        return (self.en_to_en + self.en_to_other) / self.edges_both_stated if self.edges_both_stated else None

    @property
    def english_only_share_children(self) -> float | None:
        return (self.en_to_en + self.other_to_en) / self.edges_both_stated if self.edges_both_stated else None


def language_drift(con: duckdb.DuckDBPyConnection) -> LanguageDrift:
    """The 2×2 table of English-only parent/child over `trait_drift` edges where both name languages."""
    counts = dict.fromkeys([(True, True), (True, False), (False, True), (False, False)], 0)
    for p, c, n in con.execute(
        "SELECT parent_english_only, child_english_only, count(*) FROM trait_drift "
        "WHERE parent_english_only IS NOT NULL AND child_english_only IS NOT NULL GROUP BY ALL"
    ).fetchall():
        counts[(bool(p), bool(c))] = n
    return LanguageDrift(sum(counts.values()), counts[(True, True)], counts[(True, False)],
                         counts[(False, True)], counts[(False, False)])  # fmt: skip


# ---------------------------------------------------------------- card length per generation

# A model's generation is its smallest depth in any family of at least two members (0 = a root with
# descendants); a lone model with no relatives is no generation of anything.
_GENERATION_SQL = """
SELECT t.id, g.generation, t.card_length, t.english_only
FROM (SELECT f.id, min(f.depth) AS generation FROM family_members f JOIN families USING (root)
      WHERE families.size >= 2 GROUP BY f.id) g
JOIN model_traits t ON t.id = g.id
"""


def card_length_by_generation(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per generation: models, models with a card read, and quartiles of card length (characters)."""
    df = con.execute(_GENERATION_SQL).df()
    out = []
    for gen, part in df.groupby("generation", sort=True):
        lengths = part["card_length"].dropna()
        out.append({
            "generation": int(gen),
            "models": len(part),
            "with_card": len(lengths),
            "q1": float(lengths.quantile(0.25)) if len(lengths) else None,
            "median": float(lengths.median()) if len(lengths) else None,
            "q3": float(lengths.quantile(0.75)) if len(lengths) else None,
        })  # fmt: skip
    return pd.DataFrame(out, columns=["generation", "models", "with_card", "q1", "median", "q3"])


def generation_card_lengths(con: duckdb.DuckDBPyConnection) -> dict[int, list[int]]:
    """Card lengths of the models of each generation (for plotting their distribution)."""
    out: dict[int, list[int]] = defaultdict(list)
    for _, gen, length, _ in con.execute(_GENERATION_SQL).fetchall():
        if length is not None:
            out[int(gen)].append(int(length))
    return dict(sorted(out.items()))


def english_only_by_generation(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per generation: models naming languages and the share of those that are English-only."""
    df = con.execute(_GENERATION_SQL).df().dropna(subset=["english_only"])
    rows = [{"generation": int(g), "with_languages": len(p), "english_only_share": float(p["english_only"].mean())}
            for g, p in df.groupby("generation", sort=True)]  # fmt: skip
    return pd.DataFrame(rows, columns=["generation", "with_languages", "english_only_share"])


@dataclass(frozen=True)
class CardDrift:
    """Card length of child versus parent, over edges where both cards were read."""

    edges: int
    shorter: int
    longer: int
    median_ratio: float | None  # median of child length / parent length (parents with empty cards left out)


def card_length_drift(con: duckdb.DuckDBPyConnection) -> CardDrift:
    """How often a child's card is shorter than its parent's, and by how much (median ratio)."""
    rows = con.execute(
        "SELECT parent_card_length, child_card_length FROM trait_drift "
        "WHERE parent_card_length IS NOT NULL AND child_card_length IS NOT NULL"
    ).fetchall()
    ratios = [c / p for p, c in rows if p > 0]
    return CardDrift(
        edges=len(rows),
        shorter=sum(c < p for p, c in rows),
        longer=sum(c > p for p, c in rows),
        median_ratio=float(statistics.median(ratios)) if ratios else None,
    )


# ---------------------------------------------------------------- family resemblance


def trait_sets(con: duckdb.DuckDBPyConnection) -> dict[str, frozenset[str]]:
    """Each stored model's traits as a set: its tags (less `NON_TRAIT_TAG_PREFIXES`), licence, task,
    library and languages, spelled as the Hub spells them in tags so a tag and a field do not count twice."""
    out: dict[str, set[str]] = defaultdict(set)
    for model_id, tag in con.execute("SELECT model_id, tag FROM tags").fetchall():
        if not tag.startswith(NON_TRAIT_TAG_PREFIXES):
            out[model_id].add(tag)
    for model_id, lic, task, library, languages in con.execute(
        "SELECT id, lower(license), pipeline_tag, library_name, languages FROM model_traits"
    ).fetchall():
        s = out[model_id]
        s.update(x for x in (f"license:{lic}" if lic else None, task, library) if x)
        s.update(languages or ())
    return {k: frozenset(v) for k, v in out.items() if v}


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a ∩ b| / |a ∪ b|; 0 for two empty sets."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


@dataclass(frozen=True)
class PairStats:
    """Similarity of one kind of pair: how many pairs, their mean Jaccard and a 95% bootstrap interval."""

    pairs: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class KinSimilarity:
    """Trait similarity of parent/child pairs against sibling pairs and unrelated baselines."""

    parent_child: PairStats
    siblings: PairStats
    siblings_other_author: PairStats  # siblings uploaded by different authors (no batch uploads)
    same_family: PairStats  # random members of one family that are neither parent/child nor siblings
    other_family: PairStats  # random models of two different families
    parents_compared: int  # parents with a stored trait set and at least two children that have one
    parents_siblings_closer: int  # of those, where mean sibling similarity > mean parent/child similarity
    parents_tied: int  # of those, where the two means are equal (left out of the sign test)
    agreement: tuple[tuple[str, float | None, float | None], ...]  # (trait, parent/child, siblings) agreement

    @property
    def per_parent_p_value(self) -> float | None:
        """Sign test over parents: are siblings closer as often as parent and child are?"""
        return sign_test(self.parents_siblings_closer, self.parents_compared - self.parents_tied)


def kin_similarity(
    con: duckdb.DuckDBPyConnection, *, max_pairs_per_parent: int = 300, seed: int = 0, bootstrap: int = 200
) -> KinSimilarity:
    """Compare the Jaccard similarity of trait sets for parent/child, sibling and unrelated pairs.

    Sibling pairs of a parent with many children are sampled (at most `max_pairs_per_parent`, seeded) so a
    few huge fans do not outweigh the rest; the baselines draw as many pairs as there are sibling pairs.
    """
    rng = random.Random(seed)
    traits = trait_sets(con)
    edges = [(c, p) for c, p in con.execute("SELECT child, parent FROM lineage WHERE child <> parent ORDER BY child, parent").fetchall()
             if c in traits and p in traits]  # fmt: skip
    children: dict[str, list[str]] = defaultdict(list)
    for c, p in sorted(edges):
        children[p].append(c)
    author = dict(con.execute("SELECT id, author FROM models").fetchall())

    pc_sims = [jaccard(traits[c], traits[p]) for c, p in edges]
    sib_pairs: list[tuple[str, str]] = []
    parents_compared = closer = tied = 0
    for p, kids in sorted(children.items()):
        if len(kids) < 2:
            continue
        pairs = _sample_pairs(kids, max_pairs_per_parent, rng)
        sib_pairs.extend(pairs)
        parents_compared += 1
        sib = statistics.fmean(jaccard(traits[a], traits[b]) for a, b in pairs)
        pc = statistics.fmean(jaccard(traits[k], traits[p]) for k in kids)
        if math.isclose(sib, pc):
            tied += 1
        elif sib > pc:
            closer += 1
    sib_sims = [jaccard(traits[a], traits[b]) for a, b in sib_pairs]
    other_author = [jaccard(traits[a], traits[b]) for a, b in sib_pairs
                    if author.get(a) and author.get(b) and author[a] != author[b]]  # fmt: skip

    same_fam, other_fam = _baseline_pairs(con, traits, set(edges), sib_pairs, rng)
    return KinSimilarity(
        parent_child=_pair_stats(pc_sims, bootstrap, rng),
        siblings=_pair_stats(sib_sims, bootstrap, rng),
        siblings_other_author=_pair_stats(other_author, bootstrap, rng),
        same_family=_pair_stats([jaccard(traits[a], traits[b]) for a, b in same_fam], bootstrap, rng),
        other_family=_pair_stats([jaccard(traits[a], traits[b]) for a, b in other_fam], bootstrap, rng),
        parents_compared=parents_compared,
        parents_siblings_closer=closer,
        parents_tied=tied,
        agreement=_agreement(con, edges, sib_pairs),
    )


def _sample_pairs(items: list[str], limit: int, rng: random.Random) -> list[tuple[str, str]]:
    """All unordered pairs of `items`, or `limit` distinct ones drawn at random when there are more."""
    n_pairs = len(items) * (len(items) - 1) // 2
    if n_pairs <= limit:
        return list(combinations(items, 2))
    seen: set[tuple[int, int]] = set()
    while len(seen) < limit:
        i, j = sorted(rng.sample(range(len(items)), 2))
        seen.add((i, j))
    return [(items[i], items[j]) for i, j in sorted(seen)]


def _baseline_pairs(
    con: duckdb.DuckDBPyConnection,
    traits: Mapping[str, frozenset[str]],
    edges: set[tuple[str, str]],
    sib_pairs: list[tuple[str, str]],
    rng: random.Random,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Random same-family pairs that are not kin (parent/child or siblings), and cross-family pairs."""
    members: dict[str, list[str]] = defaultdict(list)
    for root, model in con.execute(
        "SELECT f.root, f.id FROM family_members f JOIN families USING (root) WHERE families.size >= 3 "
        "ORDER BY f.root, f.id"
    ).fetchall():
        if model in traits:
            members[root].append(model)
    kin = {frozenset(e) for e in edges} | {frozenset(s) for s in sib_pairs}
    roots = [r for r, ms in members.items() if len(ms) >= 2]
    want = len(sib_pairs)
    same: list[tuple[str, str]] = []
    other: list[tuple[str, str]] = []
    if not roots:
        return same, other
    weights = [len(members[r]) for r in roots]
    for _ in range(want * 20):
        if len(same) >= want:
            break
        r = rng.choices(roots, weights)[0]
        a, b = rng.sample(members[r], 2)
        if frozenset((a, b)) not in kin:
            same.append((a, b))
    if len(roots) >= 2:
        for _ in range(want * 20):
            if len(other) >= want:
                break
            r1, r2 = rng.sample(roots, 2)
            a, b = rng.choice(members[r1]), rng.choice(members[r2])
            if a != b and frozenset((a, b)) not in kin and b not in members[r1]:
                other.append((a, b))
    return same, other


def _pair_stats(sims: list[float], bootstrap: int, rng: random.Random) -> PairStats:
    if not sims:
        return PairStats(0, None, None, None)
    means = sorted(statistics.fmean(rng.choices(sims, k=len(sims))) for _ in range(bootstrap))
    lo, hi = (
        (means[int(0.025 * (bootstrap - 1))], means[int(0.975 * (bootstrap - 1))]) if means else (None, None)
    )
    return PairStats(len(sims), statistics.fmean(sims), lo, hi)


def _agreement(
    con: duckdb.DuckDBPyConnection, edges: Iterable[tuple[str, str]], sib_pairs: Iterable[tuple[str, str]]
) -> tuple[tuple[str, float | None, float | None], ...]:
    """Per trait: share of parent/child pairs and of sibling pairs that state it identically."""
    cols = ", ".join(AGREEMENT_TRAITS)
    values = {r[0]: r[1:] for r in con.execute(f"SELECT id, {cols} FROM model_traits").fetchall()}
    edges, sib_pairs = list(edges), list(sib_pairs)
    out = []
    for i, trait in enumerate(AGREEMENT_TRAITS):
        out.append((trait, _same_share(values, edges, i), _same_share(values, sib_pairs, i)))
    return tuple(out)


def _same_share(values: Mapping[str, tuple], pairs: list[tuple[str, str]], i: int) -> float | None:
    both = [(values[a][i], values[b][i]) for a, b in pairs
            if a in values and b in values and values[a][i] is not None and values[b][i] is not None]  # fmt: skip
    return sum(x == y for x, y in both) / len(both) if both else None
