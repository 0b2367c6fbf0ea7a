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
from collections import Counter, defaultdict
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


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


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


def compare_card_lineage(folder: str | Path, edges: Iterable[EdgeRecord], models: Iterable[str]) -> dict:
    """Agreement with card-lineage-2025 on the models both sets contain.

    `card_text_parents.csv` pairs were extracted from card text by the Model Atlas preprocessing;
    `manually_annotated.csv` rows are hand-labelled (relation merge/source/unknown). Only models present
    in our dumps can be compared: most of theirs are not.
    """
    folder = Path(folder)
    ours: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        ours[e.child.lower()].add(e.parent.lower())
    have = {m.lower() for m in models}
    result: dict[str, dict] = {}
    for name, child_col, parent_col in (
        ("card_text_parents", "id", "base_model"),
        ("manually_annotated", "current_model", "base_model"),
    ):
        with open(folder / f"{name}.csv", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        truth: dict[str, set[str]] = defaultdict(set)
        for r in rows:
            for raw in (r.get(parent_col) or "").split(","):
                if p := normalize_id(raw):
                    truth[r[child_col].lower()].add(p.lower())
        overlap = [c for c in truth if c in have]
        proposed = [c for c in overlap if ours.get(c)]
        correct = [c for c in proposed if ours[c] & truth[c]]
        result[name] = {
            "rows": len(rows),
            "models_in_our_data": len(overlap),
            "with_inferred_parent": len(proposed),
            "inferred_parent_matches": len(correct),
            "precision": _r(len(correct) / len(proposed)) if proposed else None,
            "recall": _r(len(correct) / len(overlap)) if overlap else None,
            "relations": dict(
                Counter(r.get("base_model_relation", "") for r in rows if r[child_col].lower() in have)
            )
            if name == "manually_annotated"
            else {},
        }
    return result
