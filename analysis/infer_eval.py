"""Measuring metadata inference on real Hub data: precision and recall with declarations hidden.

Loads Hub JSONL dumps (hub-trees-2025, hub-scrape-2022) straight into `ModelFacts` plus their declared
parents, so the measurement needs no crawl; compares with card-lineage-2025's extracted and hand-labelled
pairs where their models overlap ours.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from analysis.infer_meta import CONFIDENCE, ModelFacts, infer_metadata_edges, normalize_id
from atlas.records import EdgeRecord, parse_hub_time

_FRONT_MATTER = re.compile(r"\A\ufeff?---\s*\r?\n.*?\r?\n---\s*(?:\r?\n|\Z)", re.DOTALL)


@dataclass(frozen=True)
class DumpModel:
    """One model of a dump: inference input plus the parents its card and tags declare (the truth)."""

    facts: ModelFacts
    declared: frozenset[str]


def card_body(readme: str | None) -> str | None:
    """README text without its YAML front matter."""
    if readme is None:
        return None
    return _FRONT_MATTER.sub("", readme, count=1)


def declared_parents(info: Mapping) -> frozenset[str]:
    """Parents declared in `cardData.base_model` and `base_model:*` tags, normalised; self-loops dropped."""
    out: set[str] = set()
    card = info.get("cardData") if isinstance(info.get("cardData"), dict) else {}
    base = card.get("base_model")
    for raw in [base] if isinstance(base, str) else base if isinstance(base, list) else []:
        if isinstance(raw, str) and (p := normalize_id(raw)):
            out.add(p)
    for tag in info.get("tags") or []:
        if (
            isinstance(tag, str)
            and tag.startswith("base_model:")
            and (p := normalize_id(tag.rsplit(":", 1)[-1]))
        ):
            out.add(p)
    model_id = info.get("id") or info.get("modelId")
    return frozenset(p for p in out if p != model_id)


def iter_dump(path: str | Path) -> Iterator[DumpModel]:
    """Models of a Hub JSONL dump (`{"info", "readme"}` per line); broken lines are skipped."""
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            info = row.get("info") or {}
            model_id = info.get("id") or info.get("modelId") or row.get("id")
            if not model_id:
                continue
            facts = ModelFacts(
                id=str(model_id),
                created_at=parse_hub_time(info.get("createdAt")),
                text=card_body(row.get("readme")),
                downloads=info.get("downloads") if isinstance(info.get("downloads"), int) else None,
            )
            yield DumpModel(facts=facts, declared=declared_parents({**info, "id": model_id}))


@dataclass
class KindScore:
    """Counts for one evidence kind: edges proposed, right, and models it was asked about."""

    proposed: int = 0
    correct: int = 0

    @property
    def precision(self) -> float | None:
        return self.correct / self.proposed if self.proposed else None


@dataclass
class MetaScore:
    """Precision (of proposed edges) and recall (of declared children getting a right parent)."""

    children: int = 0
    recovered: int = 0
    proposed: int = 0
    correct: int = 0
    kinds: dict[str, KindScore] = field(default_factory=lambda: defaultdict(KindScore))

    def as_dict(self) -> dict:
        return {
            "children_with_declared_parent": self.children,
            "children_recovered": self.recovered,
            "recall": round(self.recovered / self.children, 4) if self.children else None,
            "edges_proposed": self.proposed,
            "edges_correct": self.correct,
            "precision": round(self.correct / self.proposed, 4) if self.proposed else None,
            "per_kind": {
                k: {"proposed": s.proposed, "correct": s.correct, "precision": _r(s.precision)}
                for k, s in sorted(self.kinds.items())
            },
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def id_key(model_id: str) -> str:
    """A comparison key for a model id: normalised (legacy un-owned ids get their organisation), lower-cased."""
    return (normalize_id(model_id) or model_id).lower()


def _same(a: str, b: str) -> bool:
    return id_key(a) == id_key(b)


def score_edges(edges: Iterable[EdgeRecord], truth: Mapping[str, frozenset[str]]) -> MetaScore:
    """Score inferred edges of children that have declared parents (the hidden truth)."""
    score = MetaScore()
    by_child: dict[str, list[EdgeRecord]] = defaultdict(list)
    for e in edges:
        by_child[e.child].append(e)
    for child, parents in truth.items():
        if not parents:
            continue
        score.children += 1
        got = by_child.get(child, [])
        hit = [e for e in got if any(_same(e.parent, p) for p in parents)]
        score.recovered += bool(hit)
        for e in got:
            ok = any(_same(e.parent, p) for p in parents)
            kind = (e.evidence or "?").split(";")[0]
            score.proposed += 1
            score.correct += ok
            score.kinds[kind].proposed += 1
            score.kinds[kind].correct += ok
    return score


def evaluate_dump(path: str | Path) -> tuple[MetaScore, list[EdgeRecord]]:
    """Hide every declaration of a dump, infer from text, names and time, and score against them."""
    models = list(iter_dump(path))
    edges = infer_metadata_edges([m.facts for m in models])
    truth = {m.facts.id: m.declared for m in models}
    return score_edges(edges, truth), edges


def calibrated_confidence(score: MetaScore, *, min_support: int = 10) -> dict[str, float]:
    """Confidence per kind = measured precision (Laplace-smoothed); kinds with little support keep the prior."""
    out = dict(CONFIDENCE)
    for kind, s in score.kinds.items():
        if kind in out and s.proposed >= min_support:
            out[kind] = round((s.correct + 1) / (s.proposed + 2), 3)
    return out


# Labels of `manually_annotated.csv`: which rows give parents, which say the model is an original.
ANNOTATED_WITH_PARENTS = (
    "merge",
    "unknown_annotated",
)  # parents listed (a merge's, or one of unknown relation)
ANNOTATED_SOURCE = "source"  # an original model: any parent proposed for it is wrong
# 'unknown': the annotator could not tell; such rows are no truth and are left out.


def compare_card_lineage(
    folder: str | Path,
    edges: Iterable[EdgeRecord],
    models: Iterable[str],
    *,
    declared: Mapping[str, Iterable[str]] | None = None,
) -> dict:
    """Precision and recall against card-lineage-2025, on the models both sets contain.

    `card_text_parents.csv` holds (model, parent) pairs extracted from card text by another pipeline: it is
    scored as agreement on the models it lists (it lists only models where it found a parent, so a parent
    we propose for a model it leaves out cannot be judged). `manually_annotated.csv` is hand-labelled:
    rows labelled `merge` or `unknown_annotated` give parents (precision and recall per edge); rows
    labelled `source` are originals, so any parent proposed for one counts against precision; `unknown`
    rows are left out. Ids are compared by `id_key` (legacy ids and case do not matter).

    `edges` are inferred with every declaration hidden. With `declared` (child → declared parents), the
    hand labels are also compared with the lineage the atlas holds after `hubatlas infer`: declared parents
    where a model declares any, inferred ones otherwise.
    """
    folder = Path(folder)
    inferred: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        inferred[id_key(e.child)].add(id_key(e.parent))
    have = {id_key(m) for m in models}
    result: dict[str, dict] = {"card_text_parents": _agreement(_read_pairs(folder), inferred, have)}
    labels = _read_annotated(folder)
    result["manually_annotated"] = _score_labels(labels, inferred, have)
    if declared is not None:
        atlas = dict(inferred)
        for child, parents in declared.items():
            keys = {id_key(p) for p in parents}
            if keys:
                atlas[id_key(child)] = keys
        result["manually_annotated_atlas_lineage"] = _score_labels(labels, atlas, have)
    return result


def _split_parents(raw: str | None) -> set[str]:
    return {id_key(p) for x in (raw or "").split(",") if (p := normalize_id(x))}


def _read_pairs(folder: Path) -> dict[str, set[str]]:
    truth: dict[str, set[str]] = defaultdict(set)
    with open(folder / "card_text_parents.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            truth[id_key(r["id"])] |= _split_parents(r.get("base_model"))
    return {c: ps for c, ps in truth.items() if ps}


@dataclass(frozen=True)
class AnnotatedModel:
    """One hand-labelled model: its labels and the parents the labels give."""

    labels: frozenset[str]
    parents: frozenset[str]


def _read_annotated(folder: Path) -> dict[str, AnnotatedModel]:
    labels: dict[str, set[str]] = defaultdict(set)
    parents: dict[str, set[str]] = defaultdict(set)
    with open(folder / "manually_annotated.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            key = id_key(r["current_model"])
            label = (r.get("base_model_relation") or "").strip()
            labels[key].add(label)
            if label in ANNOTATED_WITH_PARENTS:
                parents[key] |= _split_parents(r.get("base_model"))
    return {k: AnnotatedModel(frozenset(v), frozenset(parents.get(k, ()))) for k, v in labels.items()}


def _agreement(truth: Mapping[str, set[str]], ours: Mapping[str, set[str]], have: set[str]) -> dict:
    overlap = [c for c in truth if c in have]
    proposed = sum(len(ours.get(c, ())) for c in overlap)
    agree = sum(len(ours.get(c, set()) & truth[c]) for c in overlap)
    pairs = sum(len(truth[c]) for c in overlap)
    return {
        "models_listed": len(truth),
        "models_in_our_data": len(overlap),
        "pairs_in_our_data": pairs,
        "edges_proposed": proposed,
        "edges_agreeing": agree,
        "precision": _r(agree / proposed) if proposed else None,
        "recall": _r(agree / pairs) if pairs else None,
    }


def _score_labels(labels: Mapping[str, AnnotatedModel], ours: Mapping[str, set[str]], have: set[str]) -> dict:
    with_parents = [k for k, a in labels.items() if k in have and a.parents]
    sources = [k for k, a in labels.items() if k in have and not a.parents and ANNOTATED_SOURCE in a.labels]
    unjudged = [
        k for k, a in labels.items() if k in have and not a.parents and ANNOTATED_SOURCE not in a.labels
    ]
    truth_edges = sum(len(labels[k].parents) for k in with_parents)
    correct = sum(len(ours.get(k, set()) & labels[k].parents) for k in with_parents)
    wrong_on_labelled = sum(len(ours.get(k, set()) - labels[k].parents) for k in with_parents)
    on_sources = sum(len(ours.get(k, ())) for k in sources)
    proposed = correct + wrong_on_labelled + on_sources
    by_label = {}
    for label in ANNOTATED_WITH_PARENTS:
        ks = [k for k in with_parents if label in labels[k].labels]
        n = sum(len(labels[k].parents) for k in ks)
        got = sum(len(ours.get(k, set()) & labels[k].parents) for k in ks)
        by_label[label] = {
            "models": len(ks),
            "parents": n,
            "recovered": got,
            "recall": _r(got / n) if n else None,
        }
    by_label[ANNOTATED_SOURCE] = {
        "models": len(sources),
        "with_a_proposed_parent": sum(bool(ours.get(k)) for k in sources),
    }
    return {
        "models_labelled": len(labels),
        "models_in_our_data": len(with_parents) + len(sources) + len(unjudged),
        "left_out_unknown": len(unjudged),
        "edges_proposed": proposed,
        "edges_correct": correct,
        "precision": _r(correct / proposed) if proposed else None,
        "truth_edges": truth_edges,
        "recall": _r(correct / truth_edges) if truth_edges else None,
        "models_with_a_right_parent": sum(bool(ours.get(k, set()) & labels[k].parents) for k in with_parents),
        "by_label": by_label,
    }
