"""Metadata inference: card phrasings, name suffixes, time, and precision on real Hub dumps."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from analysis.infer_eval import compare_card_lineage, evaluate_dump, iter_dump
from analysis.infer_meta import (
    CONFIDENCE,
    ModelFacts,
    card_text_parents,
    infer_metadata_edges,
    split_name_suffix,
)
from atlas.records import EdgeRecord


def test_trainer_template_names_the_linked_parent() -> None:
    text = "This model is a fine-tuned version of [bert-base](https://huggingface.co/google-bert/bert-base-uncased) on imdb."
    assert card_text_parents("me/x", text) == [("google-bert/bert-base-uncased", "finetune", "trainer_link")]


def test_legacy_unowned_id_maps_to_its_organisation() -> None:
    text = "This model is a fine-tuned version of [distilbert-base-uncased](https://huggingface.co/distilbert-base-uncased)"
    assert card_text_parents("me/x", text)[0][0] == "distilbert/distilbert-base-uncased"


def test_mergekit_card_gives_every_listed_model_as_merge_parent() -> None:
    text = (
        "This is a merge of pre-trained language models created using mergekit.\n"
        "This model was merged using the SLERP merge method.\n\n### Models Merged\n\n"
        "The following models were included in the merge:\n* [a/one](https://huggingface.co/a/one)\n"
        "* b/two\n\n### Configuration\n"
    )
    got = card_text_parents("me/m", text)
    assert {p for p, rel, _ in got if rel == "merge"} == {"a/one", "b/two"}


def test_name_suffixes_split_into_stem_and_relation() -> None:
    assert split_name_suffix("Llama-2-7B-Chat-GGUF") == ("Llama-2-7B-Chat", "quantized")
    assert split_name_suffix("Mistral-7B-Instruct-v0.2-MLX-4bit") == ("Mistral-7B-Instruct-v0.2", "quantized")
    assert split_name_suffix("phi-2-onnx") == ("phi-2", "conversion")
    assert split_name_suffix("Mistral-7B") is None


def test_name_points_to_older_unquantized_repo_and_time_lowers_a_younger_parent() -> None:
    base = ModelFacts("meta-llama/Llama-2-7b-chat-hf", datetime(2023, 7, 1), downloads=10)
    quant = ModelFacts("TheBloke/Llama-2-7B-Chat-GGUF", datetime(2023, 9, 1))
    young = ModelFacts("x/Late-model-AWQ", datetime(2023, 1, 1))
    late_parent = ModelFacts("y/Late-model", datetime(2024, 1, 1))
    edges = {e.child: e for e in infer_metadata_edges([base, quant, young, late_parent])}
    assert edges[quant.id].parent == base.id and edges[quant.id].relation == "quantized"
    assert edges[quant.id].origin == "name"
    assert edges[young.id].confidence < edges[quant.id].confidence
    assert base.id not in edges


def test_declared_children_are_skipped() -> None:
    m = ModelFacts("me/x", text="fine-tuned version of [a/b](https://huggingface.co/a/b)")
    assert infer_metadata_edges([m], skip_children={"me/x"}) == []


@pytest.fixture(scope="module")
def trees_eval(real_data: Path) -> tuple:
    """hub-trees-2025 with every declaration hidden: (score, inferred edges, its models)."""
    path = real_data / "hub-trees-2025" / "models.jsonl.gz"
    score, edges = evaluate_dump(path)
    return score, edges, list(iter_dump(path))


def test_precision_and_recall_on_hub_trees_with_declarations_hidden(trees_eval) -> None:
    d = trees_eval[0].as_dict()
    assert d["precision"] >= 0.95
    assert d["recall"] >= 0.5
    # calibration: each well-supported kind's confidence is close to its measured precision
    for kind, s in d["per_kind"].items():
        if s["proposed"] >= 20:
            assert abs(CONFIDENCE[kind] - s["precision"]) <= 0.1, kind


def test_messy_2022_scrape_does_not_crash(scrape_2022) -> None:
    models, edges = scrape_2022
    assert len(models) > 29_000
    assert sum(e.origin == "card_text" for e in edges) > 1000
    assert all(e.child != e.parent for e in edges)
    assert len({(e.child, e.parent, e.origin) for e in edges}) == len(edges)  # storable: no duplicate key
    # parents are linked to the ids the dump stores (legacy un-owned names such as bert-base-uncased)
    ids = {m.id for m in models}
    assert sum(e.parent in ids for e in edges) >= 0.9 * len(edges)


def test_precision_and_recall_against_card_lineage_2025(real_data: Path, trees_eval, scrape_2022) -> None:
    _, trees_edges, trees = trees_eval
    scrape, scrape_edges = scrape_2022
    got = compare_card_lineage(
        real_data / "card-lineage-2025",
        trees_edges + scrape_edges,
        [m.facts.id for m in trees] + [m.id for m in scrape],
        declared={m.facts.id: m.declared for m in trees},
    )
    hand = got["manually_annotated"]
    assert hand["truth_edges"] >= 50 and hand["by_label"]["source"]["models"] >= 50
    assert hand["precision"] >= 0.9 and hand["recall"] >= 0.4
    assert hand["by_label"]["source"]["with_a_proposed_parent"] <= 2
    assert got["card_text_parents"]["models_in_our_data"] >= 10
    assert got["card_text_parents"]["precision"] >= 0.8


def test_card_lineage_labels_are_used_by_their_meaning(tmp_path: Path) -> None:
    (tmp_path / "card_text_parents.csv").write_text(
        "id,base_model\nme/a,org/base\nme/b,org/base\nnot/ours,x/y\n"
    )
    (tmp_path / "manually_annotated.csv").write_text(
        "current_model,base_model,base_model_relation\n"
        'me/a,org/base,unknown_annotated\nme/m,"org/p1,org/p2",merge\n'
        "bert-base-uncased,,source\nme/u,,unknown\n"
    )
    edges = [
        EdgeRecord("me/a", "org/base", "finetune", "card_text"),
        EdgeRecord("me/b", "org/other", "finetune", "card_text"),
        EdgeRecord("me/m", "org/p1", "merge", "card_text"),
        # an original labelled `source` given a parent: wrong (its legacy id matches google-bert/...)
        EdgeRecord("google-bert/bert-base-uncased", "org/x", "finetune", "card_text"),
        EdgeRecord("me/u", "org/y", "finetune", "card_text"),  # `unknown`: no truth, not judged
    ]
    models = ["me/a", "me/b", "me/m", "google-bert/bert-base-uncased", "me/u"]
    got = compare_card_lineage(tmp_path, edges, models)
    assert (got["card_text_parents"]["models_in_our_data"], got["card_text_parents"]["precision"]) == (2, 0.5)
    hand = got["manually_annotated"]
    assert (hand["edges_proposed"], hand["edges_correct"], hand["truth_edges"]) == (3, 2, 3)
    assert hand["by_label"]["source"] == {"models": 1, "with_a_proposed_parent": 1}
    assert hand["left_out_unknown"] == 1
    with_declared = compare_card_lineage(tmp_path, edges, models, declared={"me/m": ["org/p1", "org/p2"]})
    assert with_declared["manually_annotated_atlas_lineage"]["edges_correct"] == 3


def test_xlsr_and_base_model_phrasings_name_the_parent() -> None:
    xlsr = "Fine-tuned [facebook/wav2vec2-large-xlsr-53](https://huggingface.co/facebook/wav2vec2-large-xlsr-53) on Greek."
    assert card_text_parents("me/x", xlsr) == [
        ("facebook/wav2vec2-large-xlsr-53", "finetune", "finetuned_link")
    ]
    base = "The base model is [DeBERTa-v3-base from Microsoft](https://huggingface.co/microsoft/deberta-v3-base)."
    assert card_text_parents("me/x", base)[0][:2] == ("microsoft/deberta-v3-base", "unknown")
    using = "Trained using [org/pubmed-bert](https://huggingface.co/org/pubmed-bert) as the base model."
    assert card_text_parents("me/x", using)[0][0] == "org/pubmed-bert"
    # a dataset link after "fine-tuned" is no parent
    assert (
        card_text_parents("me/x", "Fine-tuned [cv](https://huggingface.co/datasets/common_voice) only") == []
    )


def test_doubled_link_is_not_a_repo_id() -> None:
    text = "initialized from [T5](https://huggingface.co/google/https://huggingface.co/google/t5-v1_1-xxl)"
    assert all(p != "google/https" for p, _, _ in card_text_parents("me/x", text))


def test_parent_named_by_its_new_id_links_to_the_stored_legacy_id() -> None:
    # a 2022 dump stores `bert-base-uncased`; the card text (and LEGACY_IDS) say google-bert/bert-base-uncased
    base = ModelFacts("bert-base-uncased", datetime(2022, 3, 2))
    child = ModelFacts(
        "me/ft",
        datetime(2022, 5, 1),
        text="fine-tuned version of [bert-base-uncased](https://huggingface.co/bert-base-uncased)",
    )
    cased = ModelFacts("me/ft2", text="fine-tuned version of [X](https://huggingface.co/Me/Other-Model)")
    other = ModelFacts("me/other-model")
    edges = {e.child: e.parent for e in infer_metadata_edges([base, child, cased, other])}
    assert edges == {"me/ft": "bert-base-uncased", "me/ft2": "me/other-model"}


def test_adapter_on_a_local_folder_finds_the_stored_model_of_that_name() -> None:
    day = datetime(2024, 5, 1)
    base = ModelFacts("meta-llama/Llama-2-7b-hf", created_at=datetime(2023, 7, 1), downloads=10**6)
    other = ModelFacts("someone/Llama-2-7b-hf-GGUF", created_at=datetime(2023, 8, 1))
    younger = ModelFacts("late/my-base", created_at=datetime(2025, 1, 1))

    def parents(*paths: str) -> list[tuple[str, str, str, str]]:
        lora = ModelFacts("me/lora", created_at=day, local_base_paths=paths)
        edges = infer_metadata_edges(
            [lora, base, other, younger], skip_children={base.id, other.id, younger.id}
        )
        return [(e.parent, e.relation, e.origin, e.evidence.split(";")[0]) for e in edges]

    assert parents("/content/drive/MyDrive/llama-2-7b-hf/checkpoint-500/") == [
        ("meta-llama/Llama-2-7b-hf", "adapter", "name", "local_folder_name")
    ]
    # A Hub cache folder spells the repo id, stored or not.
    cache = "/root/.cache/huggingface/hub/models--mistralai--Mistral-7B-v0.1/snapshots/" + "a" * 40
    assert parents(cache) == [("mistralai/Mistral-7B-v0.1", "adapter", "name", "local_hf_cache")]
    # Folder names that name nothing, or no stored model, give no parent.
    assert parents("./outputs/checkpoint-1200", "/tmp/run/final", "/home/me/never-heard-of-it") == []
    # A stored model uploaded after the adapter is a weaker match than none at all: kept, time contradicts.
    (edge,) = infer_metadata_edges(
        [ModelFacts("me/lora", created_at=day, local_base_paths=("/data/my-base",)), younger]
    )
    assert edge.parent == "late/my-base" and edge.confidence < CONFIDENCE["local_folder_name"]


def test_hidden_zoo_adapters_get_their_base_back_from_the_local_folder(zoo_dir: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from atlas.cli import app
    from atlas.db import connect, query_dicts

    db = tmp_path / "atlas.duckdb"
    for args in (["scan", str(zoo_dir)], ["infer"]):
        result = CliRunner().invoke(app, [*args, "--db", str(db), "--quiet"])
        assert result.exit_code == 0, result.output
    truth = json.loads((zoo_dir / "lineage.json").read_text())["models"]
    hidden = {m["id"]: m["parents"] for m in truth if m["kind"] == "adapter" and not m["declared"]}
    con = connect(db, read_only=True)
    rows = query_dicts(con, "SELECT child, parent, relation, origin FROM lineage WHERE child LIKE '%lora%'")
    con.close()
    got = {r["child"]: [r["parent"]] for r in rows if r["child"] in hidden}
    assert hidden and got == hidden
    assert {(r["relation"], r["origin"]) for r in rows if r["child"] in hidden} == {("adapter", "name")}
