"""Licence families decide whether a merge may be released; conflicts are reported, never guessed away."""

from __future__ import annotations

import pytest

from analysis.licenses import licence_family, licence_verdict


@pytest.mark.parametrize(
    ("a", "b", "verdict", "words"),
    [
        ("apache-2.0", "mit", "compatible", "both permissive"),
        ("Apache-2.0", "apache-2.0", "compatible", "both apache-2.0"),
        ("mit", "cc-by-nc-4.0", "restricted", "cc-by-nc-4.0 terms (non-commercial)"),
        ("llama3", "apache-2.0", "restricted", "llama3 terms (model-specific)"),
        ("llama3", "gemma", "restricted", "both llama3 and gemma terms apply"),
        ("llama2", "cc-by-nc-4.0", "restricted", "non-commercial"),
        ("gpl-3.0", "mit", "restricted", "gpl-3.0 terms (copyleft)"),
        ("gpl-3.0", "llama3", "conflict", "gpl-3.0 allows no added restrictions, llama3 adds them"),
        ("cc-by-nc-4.0", "cc-by-sa-4.0", "conflict", "cc-by-sa-4.0 allows no added restrictions"),
        ("gpl-3.0", "cc-by-sa-4.0", "conflict", "each require their own terms"),
        ("cc-by-nd-4.0", "mit", "conflict", "forbids derivatives"),
        (None, "mit", "unknown", "licence unknown (none)"),
        ("other", "mit", "unknown", "licence unknown (other)"),
    ],
)
def test_verdicts_name_the_terms_that_apply(a: str | None, b: str, verdict: str, words: str) -> None:
    got = licence_verdict(a, b)
    assert got.verdict == verdict
    assert words in got.reason


def test_verdict_does_not_depend_on_the_order() -> None:
    for a, b in [("gpl-3.0", "llama3"), ("mit", "cc-by-nc-4.0"), ("llama3", "gemma"), (None, "mit")]:
        assert licence_verdict(a, b).verdict == licence_verdict(b, a).verdict


def test_families_of_common_hub_licences() -> None:
    assert licence_family("apache-2.0") == "permissive"
    assert licence_family("AGPL-3.0") == "copyleft"
    assert licence_family("cc-by-nc-sa-4.0") == "non-commercial"
    assert licence_family("llama3.1") == "model-specific"
    assert licence_family("") == licence_family(None) == licence_family("proprietary") == "unknown"
