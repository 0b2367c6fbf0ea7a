"""Metadata inference: card phrasings, name suffixes, time, and precision on real Hub dumps."""

from __future__ import annotations

from datetime import datetime

from analysis.infer_meta import ModelFacts, card_text_parents, infer_metadata_edges, split_name_suffix


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


def test_precision_and_recall_on_hub_trees_with_declarations_hidden(real_data) -> None:
    from analysis.infer_eval import evaluate_dump

    score, _ = evaluate_dump(real_data / "hub-trees-2025" / "models.jsonl.gz")
    d = score.as_dict()
    assert d["precision"] >= 0.95
    assert d["recall"] >= 0.5
    # calibration: each well-supported kind's confidence is close to its measured precision
    from analysis.infer_meta import CONFIDENCE

    for kind, s in d["per_kind"].items():
        if s["proposed"] >= 20:
            assert abs(CONFIDENCE[kind] - s["precision"]) <= 0.1, kind


def test_messy_2022_scrape_does_not_crash(real_data) -> None:
    from analysis.infer_eval import iter_dump

    models = [m.facts for m in iter_dump(real_data / "hub-scrape-2022" / "models.jsonl.gz")]
    edges = infer_metadata_edges(models)
    assert len(models) > 29_000
    assert sum(e.origin == "card_text" for e in edges) > 1000
    assert all(e.child != e.parent for e in edges)
