from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from analysis.kinship import KINSHIP_METRICS, KinshipConfig, all_pairs
from atlas.cli import app
from atlas.db import connect, query_dicts, upsert
from atlas.records import EdgeRecord, ModelRecord
from tests.analysis.conftest import BROKEN, LINEAGE


def _family(n: int = 40, d: int = 3000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(d, generator=g)
    tasks = torch.randn(4, d, generator=g)
    mix = torch.rand(n, 4, generator=g)
    x = base + 0.1 * mix @ tasks + 0.02 * torch.randn(n, d, generator=g)  # (n, d)
    return x, base


def test_metrics_match_their_definitions() -> None:
    x, base = _family(6, 500)
    got = all_pairs(x, base, device="cpu", config=KinshipConfig(topk_fraction=0.2))
    d = (x - base).double().numpy()
    for i in range(6):
        for j in range(6):
            a, b = d[i], d[j]
            assert got["pearson"][i, j] == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-9)
            assert got["cosine"][i, j] == pytest.approx(
                a @ b / np.linalg.norm(a) / np.linalg.norm(b), abs=1e-9
            )
            assert got["l2"][i, j] == pytest.approx(
                np.linalg.norm(x[i].double().numpy() - x[j].double().numpy()), abs=1e-6
            )
            top_a = set(np.argsort(-np.abs(a))[:100])
            top_b = set(np.argsort(-np.abs(b))[:100])
            both = sorted(top_a & top_b)
            assert got["topk_overlap"][i, j] == pytest.approx(len(both) / len(top_a | top_b))
            conflict = np.mean(np.sign(a[both]) != np.sign(b[both]))
            assert got["sign_conflict"][i, j] == pytest.approx(conflict)
    assert set(KINSHIP_METRICS) >= {"pearson", "cosine", "l2", "sign_conflict", "topk_overlap"}


def test_blocked_equals_unblocked_on_cpu() -> None:
    x, base = _family(37, 2000)
    whole = all_pairs(x, base, device="cpu", config=KinshipConfig(block=64))
    blocked = all_pairs(x, base, device="cpu", config=KinshipConfig(block=5, slab=300))
    for m in whole:
        torch.testing.assert_close(blocked[m], whole[m], rtol=0, atol=1e-9, equal_nan=True)


@pytest.mark.gpu
def test_cuda_equals_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    x, base = _family(300, 20000)
    cpu = all_pairs(x, base, device="cpu", config=KinshipConfig(block=64))
    cuda = all_pairs(x, base, device="cuda", config=KinshipConfig(block=128))
    for m in cpu:
        torch.testing.assert_close(cuda[m], cpu[m], rtol=1e-6, atol=1e-6, equal_nan=True)


def _atlas(db_path: Path, ckpt_root: Path, *, lineage: bool) -> None:
    con = connect(db_path)
    ids = sorted({*LINEAGE, *(p for p, _ in LINEAGE.values()), *BROKEN})
    upsert(con, "models", [ModelRecord(id=m, source="zoo", location=str(ckpt_root / m)) for m in ids])
    if lineage:
        upsert(con, "edges", [EdgeRecord(c, p, rel, "card") for c, (p, rel) in LINEAGE.items()])
    con.close()


def _kin(con, a: str, b: str) -> dict:
    a, b = min(a, b), max(a, b)
    return query_dicts(con, "SELECT * FROM kinship WHERE a = ? AND b = ?", [a, b])[0]


def test_commands_recover_the_family(ckpt_root: Path, db_path: Path) -> None:
    _atlas(db_path, ckpt_root, lineage=True)
    runner = CliRunner()
    out = runner.invoke(app, ["sample", "--all", "--db", str(db_path), "--quiet", "--workers", "2"])
    assert out.exit_code == 0, out.output
    assert "sampled 11 models (2 unsupported, 4 errors)" in out.stdout
    out = runner.invoke(app, ["kinship", "--db", str(db_path), "--device", "cpu", "--quiet"])
    assert out.exit_code == 0, out.output
    con = connect(db_path)
    errors = dict(con.execute("SELECT model_id, status FROM weight_samples WHERE status <> 'ok'").fetchall())
    assert errors.keys() == set(BROKEN)
    sib, cousin = _kin(con, "zoo/ft-a1", "zoo/ft-a2"), _kin(con, "zoo/ft-a1", "zoo/ft-b1")
    assert sib["reference"] == "zoo/ft-a" and cousin["reference"] == "zoo/base"
    assert sib["l2"] < cousin["l2"]
    fp16, bf16 = _kin(con, "zoo/ft-a1", "zoo/ft-a1-fp16"), _kin(con, "zoo/ft-a1", "zoo/ft-a1-bf16")
    assert fp16["cosine"] > 0.999 and fp16["l2"] < 0.01 * sib["l2"]
    assert bf16["cosine"] > 0.99 and bf16["l2"] < 0.05 * sib["l2"]
    shard = _kin(con, "zoo/ft-a1", "zoo/ft-a1-sharded")
    assert shard["l2"] < 1e-5 * sib["l2"] and shard["pearson"] == pytest.approx(1)
    lora = _kin(con, "zoo/lora-a", "zoo/lora-a-merged")
    assert lora["reference"] == "zoo/base" and lora["cosine"] > 0.9999 and lora["l2"] < 1e-4
    assert _kin(con, "zoo/lora-a", "zoo/ft-a")["cosine"] < 0.2
    nearest = query_dicts(
        con, "SELECT kin FROM nearest_kin WHERE model_id = 'zoo/ft-a1' ORDER BY rank LIMIT 3"
    )
    assert {r["kin"] for r in nearest} == {"zoo/ft-a1-fp16", "zoo/ft-a1-bf16", "zoo/ft-a1-sharded"}
    layers = {r[0] for r in con.execute("SELECT DISTINCT layer FROM kinship_layers").fetchall()}
    assert layers == {"layer.0", "layer.1", "embed", "head"}
    stats = dict(con.execute("SELECT model_id, reference FROM weight_stats").fetchall())
    assert stats["zoo/ft-a1"] == "zoo/ft-a" and stats["zoo/base"] is None
    assert con.execute("SELECT count(*) FROM kinship WHERE NOT a < b").fetchone()[0] == 0


def test_raw_weight_kinship_ranks_siblings_above_cousins(ckpt_root: Path, db_path: Path) -> None:
    _atlas(db_path, ckpt_root, lineage=False)
    runner = CliRunner()
    assert runner.invoke(app, ["sample", "--all", "--db", str(db_path), "-q"]).exit_code == 0
    assert runner.invoke(app, ["kinship", "--db", str(db_path), "--device", "cpu", "-q"]).exit_code == 0
    con = connect(db_path)
    sib, cousin = _kin(con, "zoo/ft-a1", "zoo/ft-a2"), _kin(con, "zoo/ft-a1", "zoo/ft-b1")
    assert sib["reference"] is None and sib["pearson"] > cousin["pearson"] > 0.5
    # without lineage an adapter still finds its base through its adapter config
    assert _kin(con, "zoo/lora-a", "zoo/lora-a-merged")["l2"] < 1e-4


def test_real_bert_tiny_finetunes_are_close_kin_and_apart_from_random_checkpoints(
    real_data: Path, db_path: Path
) -> None:
    weights = real_data / "weights"
    models = {f"real/{p.stem}": p for p in (weights / "bert-tiny-finetunes").glob("*.safetensors")}
    models.update(
        {
            f"random/{p.name}": p / "model.safetensors"
            for p in (weights / "tiny-random-checkpoints").iterdir()
            if p.is_dir()
        }
    )
    con = connect(db_path)
    upsert(con, "models", [ModelRecord(id=m, source="local", location=str(p)) for m, p in models.items()])
    con.close()
    runner = CliRunner()
    out = runner.invoke(app, ["sample", "--all", "--db", str(db_path), "-q"])
    assert out.exit_code == 0 and "sampled 5 models" in out.stdout, out.output
    assert runner.invoke(app, ["kinship", "--db", str(db_path), "--device", "cpu", "-q"]).exit_code == 0
    con = connect(db_path)
    rows = query_dicts(con, "SELECT * FROM kinship")
    assert len(rows) == 1  # the random checkpoints share no shapes with the BERTs or each other
    (pair,) = rows
    layers = dict(con.execute("SELECT layer, cosine FROM kinship_layers").fetchall())
    assert {pair["a"], pair["b"]} == {m for m in models if m.startswith("real/")}
    assert pair["pearson"] > 0.9 and pair["cosine"] > 0.9
    assert set(layers) == {"layer.0", "layer.1", "other"}  # other: the pooler
    assert layers["layer.0"] > 0.9 and layers["layer.1"] > 0.9
