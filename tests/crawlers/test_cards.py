"""Model-card parsing over the real edge cases recorded from the Hub client's own tests."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from crawlers.bundle import bundle_from_info
from crawlers.cards import iter_model_index_evals, parse_card


def _card(real_data: Path, name: str) -> bytes:
    return (real_data / "hub-client-recordings" / "cards" / name).read_bytes()


def test_simple_card_splits_metadata_and_text(real_data: Path) -> None:
    card = parse_card(_card(real_data, "sample_simple.md"), model_id="o/m")
    assert card.metadata["license"] == "mit"
    assert card.metadata["datasets"] == ["beans"]
    assert card.text.lstrip().startswith("# my-cool-model")
    assert card.flags == ()


def test_windows_line_breaks_parse(real_data: Path) -> None:
    card = parse_card(_card(real_data, "sample_windows_line_breaks.md"), model_id="o/m")
    assert card.metadata["language"] == "eo"
    assert "\r" not in card.text


def test_no_metadata_gives_empty_mapping(real_data: Path) -> None:
    card = parse_card(_card(real_data, "sample_no_metadata.md"), model_id="o/m")
    assert card.metadata == {}
    assert card.text.startswith("# MyCoolModel")


@pytest.mark.parametrize("name", ["sample_invalid_card_data.md", "sample_template.md"])
def test_invalid_front_matter_is_flagged_not_raised(real_data: Path, name: str) -> None:
    card = parse_card(_card(real_data, name), model_id="o/bad")
    assert card.metadata == {}
    assert [f.flag for f in card.flags] == ["yaml_error"]
    assert card.flags[0].model_id == "o/bad"


def test_model_index_results_become_evals(real_data: Path) -> None:
    card = parse_card(_card(real_data, "sample_simple_model_index.md"), model_id="o/m")
    evals = iter_model_index_evals("o/m", card.metadata)
    by_metric = {(e.task, e.metric): e.value for e in evals}
    assert by_metric[("image-classification/Beans", "accuracy")] == 0.9
    assert by_metric[("image-classification/Beans", "f1")] == 0.66


def test_model_index_without_dataset_still_reads_the_value(real_data: Path) -> None:
    card = parse_card(_card(real_data, "sample_invalid_model_index.md"), model_id="o/m")
    assert [(e.task, e.metric, e.value) for e in iter_model_index_evals("o/m", card.metadata)] == [
        ("image-classification", "acc", 0.9)
    ]


def test_non_utf8_card_is_read_and_flagged() -> None:
    card = parse_card(b"---\nlicense: mit\n---\ncaf\xe9 model", model_id="o/latin")
    assert card.metadata == {"license": "mit"}
    assert "café" in card.text
    assert [f.flag for f in card.flags] == ["non_utf8_card"]


def test_bom_and_dashes_in_text() -> None:
    card = parse_card("\ufeff---\nbase_model: a/b\n---\ntext\n---\nmore", model_id="o/m")
    assert card.metadata == {"base_model": "a/b"}
    assert card.text == "text\n---\nmore"


@pytest.mark.slow
@pytest.mark.parametrize("dump", ["hub-trees-2025", "hub-scrape-2022"])
def test_every_real_card_parses_without_exception(real_data: Path, dump: str) -> None:
    flags: Counter[str] = Counter()
    n = with_text = 0
    with gzip.open(real_data / dump / "models.jsonl.gz", "rt") as f:
        for line in f:
            record = json.loads(line)
            info = record["info"] if "id" in record["info"] else {**record["info"], "id": record["id"]}
            bundle = bundle_from_info(info, readme=record.get("readme"), source="snapshot")
            n += 1
            with_text += bundle.card is not None and bundle.card.text is not None
            flags.update(fl.flag for fl in bundle.flags)
    print(f"{dump}: {n} models, {with_text} cards read, flags {dict(flags)}")
    assert n > 1000 and with_text > 0.5 * n if dump == "hub-trees-2025" else with_text > 10000
    # Real data holds a few broken front matters: they are counted, not fatal.
    assert sum(flags.values()) < 0.01 * n
