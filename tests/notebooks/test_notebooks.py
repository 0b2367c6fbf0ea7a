"""The notebooks run end to end on real Hub data and write their figures."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ECOSYSTEM_FIGURES = (
    "family_sizes_depths",
    "license_transitions",
    "languages",
    "card_length",
    "trait_similarity",
)


def _execute(path: Path, figures: Path, real_data: Path, monkeypatch: pytest.MonkeyPatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("HUBATLAS_REAL_DATA", str(real_data))
    monkeypatch.setenv("HUBATLAS_FIGURES", str(figures))
    nb = jupytext.read(path)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    return nb


def _text(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", ""))
            out.extend(str(v) for k, v in o.get("data", {}).items() if k in ("text/plain", "text/markdown"))
    return "\n".join(out)


def test_ecosystem_notebook_runs_and_saves_its_figures(
    real_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = _execute(NOTEBOOKS / "ecosystem.py", tmp_path, real_data, monkeypatch)
    for name in ECOSYSTEM_FIGURES:
        png = tmp_path / f"{name}.png"
        assert png.is_file(), f"{name}.png not written"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    text = _text(nb)
    assert "imported 1,496 models" in text
    # the closing cell states a verdict, computed from the measurements, for each finding it compares
    verdicts = [line for line in text.splitlines() if line.startswith("- **")]
    assert len(verdicts) >= 6
    assert all(("does not reproduce" in v) or ("reproduces" in v) for v in verdicts)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
