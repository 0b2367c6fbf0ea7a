"""Declared lineage from every place a model can state it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from crawlers.bundle import bundle_from_info
from crawlers.relations import normalise_id


def _edges(bundle) -> set[tuple[str, str, str]]:
    return {(e.parent, e.relation, e.origin) for e in bundle.edges}


def test_ids_are_normalised_from_urls_and_revisions() -> None:
    assert (
        normalise_id(" https://huggingface.co/meta-llama/Llama-2-7b-hf/tree/main ")
        == "meta-llama/Llama-2-7b-hf"
    )
    assert normalise_id("hf.co/org/model@v1.0") == "org/model"
    assert normalise_id("  ") is None


def test_card_string_and_relation() -> None:
    b = bundle_from_info({"id": "o/c", "cardData": {"base_model": "o/p", "base_model_relation": "quantized"}})
    assert _edges(b) == {("o/p", "quantized", "card")}


def test_card_list_without_relation_is_a_merge() -> None:
    b = bundle_from_info({"id": "o/m", "cardData": {"base_model": ["a/x", "b/y"]}})
    assert _edges(b) == {("a/x", "merge", "card"), ("b/y", "merge", "card")}


def test_tags_give_relation_and_bare_tags_are_unknown() -> None:
    tags = ["base_model:a/p", "base_model:adapter:a/p", "base_model:b/q"]
    b = bundle_from_info({"id": "o/c", "tags": tags})
    assert _edges(b) == {("a/p", "adapter", "tag"), ("b/q", "unknown", "tag")}


def test_config_name_or_path_only_when_it_names_another_repo() -> None:
    named = bundle_from_info({"id": "o/c", "config": {"_name_or_path": "org/base"}})
    local = bundle_from_info({"id": "o/c", "config": {"_name_or_path": "/home/me/ckpt/org"}})
    itself = bundle_from_info({"id": "o/c", "config": {"_name_or_path": "o/c"}})
    assert _edges(named) == {("org/base", "unknown", "config")}
    assert _edges(local) == set() and _edges(itself) == set()


def test_adapter_and_mergekit_files() -> None:
    files = {
        "adapter_config.json": json.dumps({"base_model_name_or_path": "org/base", "peft_type": "LORA"}),
        "mergekit_config.yml": "models:\n  - model: a/x\n    parameters: {weight: 0.3}\n  - model: b/y\n    parameters: {weight: 0.7}\nmerge_method: linear\n",
    }
    b = bundle_from_info({"id": "o/c"}, repo_files=files)
    assert ("org/base", "adapter", "adapter_config") in _edges(b)
    weights = {e.parent: e.merge_weight for e in b.edges if e.origin == "mergekit"}
    assert weights == {"a/x": 0.3, "b/y": 0.7}


def test_adapter_on_a_local_folder_is_no_edge_but_keeps_the_path() -> None:
    files = {"adapter_config.json": json.dumps({"base_model_name_or_path": "/content/drive/Llama-2-7b-hf"})}
    b = bundle_from_info({"id": "o/lora"}, repo_files=files)
    assert _edges(b) == set()
    assert [(f.flag, f.detail) for f in b.flags] == [("local_base_path", "/content/drive/Llama-2-7b-hf")]


def test_real_mergekit_repos_declare_all_their_sources(real_data: Path) -> None:
    repo = real_data / "mergekit-repos" / "1PARAMMYL-8B-ModelStock"
    b = bundle_from_info(
        {"id": "o/1PARAMMYL-8B-ModelStock"},
        readme=(repo / "README.md").read_text(),
        repo_files={
            "mergekit_config.yml": (repo / "mergekit_config.yml").read_text(),
            "config.json": (repo / "config.json").read_text(),
        },
    )
    merged = {e.parent for e in b.edges if e.origin == "mergekit"}
    assert merged == {
        "arcee-ai/Llama-3.1-SuperNova-Lite",
        "DreadPoor/Heart_Stolen-8B-Model_Stock",
        "Dampfinchen/Llama-3.1-8B-Ultra-Instruct",
    }
    assert ("arcee-ai/Llama-3.1-SuperNova-Lite", "unknown", "card") in _edges(b)


def test_multi_document_config_resolves_intermediate_names(real_data: Path) -> None:
    text = (
        real_data / "mergekit-repos" / "mergeui-test-data" / "mergekit_config__multi_docs.yml"
    ).read_text()
    b = bundle_from_info({"id": "o/final"}, repo_files={"mergekit_config.yml": text})
    parents = {e.parent for e in b.edges}
    assert "gradient-slerp" not in parents
    assert {
        "psmathur/orca_mini_v3_13b",
        "WizardLM/WizardMath-13B-V1.0",
        "TheBloke/Llama-2-13B-fp16",
    } <= parents


def test_self_loops_and_garbage_are_flagged_not_raised() -> None:
    b = bundle_from_info({"id": "o/c", "cardData": {"base_model": ["o/c", "not a repo id!!"]}})
    flags = {e.parent: e.flag for e in b.edges}
    assert flags == {"o/c": "self_loop", "not a repo id!!": "invalid_id"}
    assert {f.flag for f in b.flags} == {"self_loop", "invalid_base_model"}


def test_broken_repo_files_are_flagged() -> None:
    b = bundle_from_info(
        {"id": "o/c"}, repo_files={"adapter_config.json": "{nope", "mergekit_config.yml": "[1, 2]"}
    )
    assert {f.flag for f in b.flags} == {"bad_adapter_config", "bad_mergekit_config"}
    assert b.edges == ()


def test_every_base_model_tag_of_the_real_trees_yields_an_edge(real_data: Path) -> None:
    with gzip.open(real_data / "hub-trees-2025" / "models.jsonl.gz", "rt") as f:
        for line in f:
            info = json.loads(line)["info"]
            declared = {t.split(":")[-1] for t in info["tags"] if t.startswith("base_model:")}
            got = {e.parent for e in bundle_from_info(info).edges if e.origin == "tag"}
            assert declared == got, info["id"]
