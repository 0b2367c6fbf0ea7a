"""Ecosystem analytics over the trait views: family shape, licence and language drift, card length, kinship."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

from analysis import traits
from atlas import db
from atlas.records import EdgeRecord, ModelBundle, ModelRecord, TagRecord
from atlas.store import write_bundles

SIBLING_TAGS = ("trl", "sft", "text-generation", "generated_from_trainer")


@dataclass(frozen=True)
class M:
    """A model of a test atlas: record fields, tags, and its declared parents."""

    id: str
    license: str | None = None
    languages: tuple[str, ...] = ()
    card_length: int | None = None
    tags: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    author: str | None = None
    extra: dict = field(default_factory=dict)


def _atlas(path: Path, models: list[M]) -> duckdb.DuckDBPyConnection:
    con = db.connect(path)
    bundles = [
        ModelBundle(
            ModelRecord(m.id, author=m.author or m.id.split("/")[0], license=m.license, languages=m.languages,
                        card_length=m.card_length, pipeline_tag="text-generation", source="hub"),
            tags=tuple(TagRecord(m.id, t) for t in m.tags),
            edges=tuple(EdgeRecord(m.id, p, "finetune", "card") for p in m.parents),
        )
        for m in models
    ]  # fmt: skip
    write_bundles(con, bundles)
    return con


@pytest.fixture
def ecosystem(db_path: Path) -> duckdb.DuckDBPyConnection:
    """Two families and a lone model.

    o/r (llama2, en+fr, long card) → a/c1 (mit, en), b/c2 (mit, en), c/c3 (apache-2.0, de), d/c4 (no licence)
    a/c1 → a/g1 (llama2, en); p/s (gpl-3.0) → p/s1, p/s2; x/lone.
    """
    base = ("llama", "region:us", "base_model:finetune:x/y")
    return _atlas(
        db_path,
        [
            M("o/r", "llama2", ("en", "fr"), 10_000, base),
            M("a/c1", "mit", ("en",), 1_000, SIBLING_TAGS, ("o/r",)),
            M("b/c2", "mit", ("en",), 2_000, SIBLING_TAGS, ("o/r",)),
            M("c/c3", "apache-2.0", ("de",), 500, SIBLING_TAGS, ("o/r",)),
            M("d/c4", None, (), 20_000, SIBLING_TAGS, ("o/r",)),
            M("a/g1", "llama2", ("en",), 300, (*SIBLING_TAGS, "dpo"), ("a/c1",)),
            M("p/s", "gpl-3.0", (), 5_000, ("audio", "asr")),
            M("p/s1", "gpl-3.0", (), 4_000, ("audio", "asr", "finetuned"), ("p/s",)),
            M("p/s2", "gpl-3.0", (), 4_000, ("audio", "asr", "finetuned"), ("p/s",)),
            M("x/lone", "mit", ("en",), 50, ("lonely",)),
        ],
    )


def test_family_shape(ecosystem: duckdb.DuckDBPyConnection) -> None:
    shape = traits.family_shape(ecosystem)
    assert (shape.families, shape.singletons, shape.members) == (2, 1, 9)
    assert (shape.largest_root, shape.largest_size, shape.max_depth) == ("o/r", 6, 2)
    assert shape.depth_members == ((0, 2), (1, 6), (2, 1))
    assert shape.median_size == 4.5


def test_license_transitions_and_drift(ecosystem: duckdb.DuckDBPyConnection) -> None:
    table = traits.license_transitions(ecosystem)
    assert table.loc["restricted", "permissive"] == 3
    assert table.loc["restricted", "none"] == 1
    assert table.loc["permissive", "restricted"] == 1
    assert table.loc["copyleft", "copyleft"] == 2
    assert int(table.to_numpy().sum()) == 7  # every edge to a stored parent
    drift = traits.license_drift(ecosystem)
    assert (drift.edges_both_stated, drift.changed, drift.dropped) == (6, 4, 1)
    assert (drift.toward_open, drift.toward_closed, drift.class_changed) == (3, 1, 4)
    assert drift.open_share == 0.75
    assert drift.top_changes[0] == ("llama2", "mit", 2)


def test_language_drift(ecosystem: duckdb.DuckDBPyConnection) -> None:
    lang = traits.language_drift(ecosystem)
    # o/r (en+fr) → c1 en, c2 en, c3 de; c1 (en) → g1 (en); c4 and the p/ family name no language
    assert (lang.edges_both_stated, lang.en_to_en, lang.en_to_other, lang.other_to_en, lang.other_to_other) == (
        4, 1, 0, 2, 1,
    )  # fmt: skip
    assert lang.to_english_rate == pytest.approx(2 / 3) and lang.from_english_rate == 0.0
    assert lang.p_value == pytest.approx(0.5)  # 2 of 2 discordant pairs one way
    by_gen = traits.english_only_by_generation(ecosystem)
    assert by_gen.set_index("generation")["english_only_share"].to_dict() == {0: 0.0, 1: 2 / 3, 2: 1.0}


def test_card_length_per_generation_and_per_edge(ecosystem: duckdb.DuckDBPyConnection) -> None:
    by_gen = traits.card_length_by_generation(ecosystem).set_index("generation")
    assert by_gen["models"].to_dict() == {0: 2, 1: 6, 2: 1}  # the lone model is in no generation
    assert (
        by_gen.loc[0, "median"] == 7_500
        and by_gen.loc[1, "median"] == 3_000
        and by_gen.loc[2, "median"] == 300
    )
    assert traits.generation_card_lengths(ecosystem)[2] == [300]
    card = traits.card_length_drift(ecosystem)
    assert (card.edges, card.shorter, card.longer) == (7, 6, 1)
    assert card.median_ratio == pytest.approx(0.3)  # ratios .1 .2 .05 2 .3 .8 .8


def test_trait_sets_leave_out_lineage_and_hosting_tags(ecosystem: duckdb.DuckDBPyConnection) -> None:
    sets = traits.trait_sets(ecosystem)
    assert sets["o/r"] == {"llama", "license:llama2", "text-generation", "en", "fr"}
    assert traits.jaccard(sets["a/c1"], sets["b/c2"]) == 1.0
    assert traits.jaccard(frozenset(), frozenset()) == 0.0


def test_siblings_are_compared_with_parent_child_and_baselines(ecosystem: duckdb.DuckDBPyConnection) -> None:
    kin = traits.kin_similarity(ecosystem, bootstrap=50)
    assert kin.parent_child.pairs == 7
    assert kin.siblings.pairs == 6 + 1  # four children of o/r, two of p/s
    assert kin.siblings.mean > kin.parent_child.mean > kin.other_family.mean
    assert kin.siblings.ci_low <= kin.siblings.mean <= kin.siblings.ci_high
    assert kin.siblings_other_author.pairs == 6  # p/s1 and p/s2 share their author
    assert (kin.parents_compared, kin.parents_siblings_closer, kin.parents_tied) == (2, 2, 0)
    agreement = {t: (pc, sib) for t, pc, sib in kin.agreement}
    assert agreement["pipeline_tag"] == (1.0, 1.0)
    assert agreement["license_class"][1] > agreement["license_class"][0]


def test_big_fans_are_sampled_and_the_sample_is_seeded(db_path: Path) -> None:
    kids = [M(f"k{i}/m", "mit", ("en",), 10, (f"t{i % 3}", "x"), ("o/root",)) for i in range(30)]
    con = _atlas(db_path, [M("o/root", "mit", ("en",), 100, ("x",)), *kids])
    a = traits.kin_similarity(con, max_pairs_per_parent=40, seed=3, bootstrap=20)
    b = traits.kin_similarity(con, max_pairs_per_parent=40, seed=3, bootstrap=20)
    assert a.siblings.pairs == 40 and a == b


def test_sign_test_matches_the_exact_binomial_test() -> None:
    from scipy.stats import binomtest

    for k, n in [(0, 5), (5, 10), (6, 19), (64, 105), (17, 31), (1, 1)]:
        assert traits.sign_test(k, n) == pytest.approx(binomtest(k, n, 0.5).pvalue)
    assert traits.sign_test(0, 0) is None


@pytest.mark.slow
def test_trait_analyses_run_on_the_messy_2022_scrape(real_data: Path, scrape_2022, tmp_path: Path) -> None:
    """Import the 2022 scrape's linked and flagged models (messy cards, no base_model fields), infer
    parents from card text, and run every trait view and analysis on the result."""
    from typer.testing import CliRunner

    from atlas.cli import app

    src = real_data / "hub-scrape-2022" / "models.jsonl.gz"
    edges = scrape_2022[1]
    linked = {e.child for e in edges} | {e.parent for e in edges}
    subset = tmp_path / "scrape.jsonl.gz"
    with gzip.open(src, "rt", encoding="utf-8", errors="replace") as f, gzip.open(subset, "wt") as out:
        for i, line in enumerate(f):
            row = json.loads(line)
            readme = row.get("readme") or ""
            messy = readme.startswith("---") and "\n---" not in readme[3:]  # front matter never closed
            if row.get("id") in linked or messy or i % 50 == 0:
                out.write(line)
    dbfile = tmp_path / "scrape.duckdb"
    runner = CliRunner()
    for args in (["import", str(subset)], ["infer"]):
        result = runner.invoke(app, [*args, "--db", str(dbfile)])
        assert result.exit_code == 0, result.output
    con = db.connect(dbfile, read_only=True)
    n_edges = con.execute("SELECT count(*) FROM trait_drift").fetchall()[0][0]
    assert n_edges > 2000
    for view in ("family_depths", "family_relations", "model_traits"):
        assert con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0] > 0
    assert traits.license_drift(con).edges_both_stated > 500
    assert traits.language_drift(con).edges_both_stated > 100
    assert traits.card_length_drift(con).edges > 1000
    assert len(traits.card_length_by_generation(con)) >= 2
    kin = traits.kin_similarity(con, bootstrap=20)
    assert kin.parent_child.pairs > 1000 and kin.siblings.pairs > 1000
