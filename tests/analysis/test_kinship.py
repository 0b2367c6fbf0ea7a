from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats
from typer.testing import CliRunner

from analysis.kinship import KINSHIP_METRICS, KinshipConfig, all_pairs, excess_kurtosis_rows, pair_metrics
from atlas.cli import app
from atlas.db import connect, query_dicts, upsert
from atlas.records import EdgeRecord, ModelRecord
from tests.analysis import checkpoints as ck
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


def test_kurtosis_is_the_textbook_one_in_any_block_size() -> None:
    x, _ = _family(9, 4000)
    x[:, :40] *= 30  # heavy tails: a clearly positive excess kurtosis
    x[3] = 1.5  # a constant row has none
    varied = [0, 1, 2, 4, 5, 6, 7, 8]
    want = scipy_stats.kurtosis(x[varied].double().numpy(), axis=1)
    for block_values in (1, 4000, 12_000, 1 << 20):
        got = excess_kurtosis_rows(x, block_values=block_values).numpy()
        np.testing.assert_allclose(got[varied], want, rtol=1e-9)
        assert np.isnan(got[3])
    assert want.min() > 1


def test_blocked_equals_unblocked_on_cpu() -> None:
    x, base = _family(37, 2000)
    whole = all_pairs(x, base, device="cpu", config=KinshipConfig(block=64))
    blocked = all_pairs(x, base, device="cpu", config=KinshipConfig(block=5, slab=300, slab_bytes=1))
    for m in whole:
        torch.testing.assert_close(blocked[m], whole[m], rtol=0, atol=1e-9, equal_nan=True)


def test_every_reference_from_one_gram_matrix_equals_its_own_deltas() -> None:
    x, _ = _family(30, 1500, seed=3)
    g = torch.Generator().manual_seed(4)
    pairs = {r: tuple(torch.randint(0, 30, (40,), generator=g) for _ in range(2)) for r in (0, 7, None)}
    got = pair_metrics(x, pairs, device="cpu", config=KinshipConfig(block=8, slab=500))
    for r, (i, j) in pairs.items():
        direct = all_pairs(x, None if r is None else x[r], device="cpu")
        for m, values in got[r].items():
            torch.testing.assert_close(values, direct[m][i, j], rtol=0, atol=1e-9, equal_nan=True)


def test_tiny_deltas_keep_their_precision() -> None:
    """Deltas 10^-4 of the weights (a half-precision copy's size) come out of the raw Gram matrix intact."""
    g = torch.Generator().manual_seed(5)
    base = torch.randn(20000, generator=g, dtype=torch.float64)
    shared = torch.randn(20000, generator=g, dtype=torch.float64)
    x = torch.stack([base, *(base + 1e-4 * (shared + torch.randn(20000, generator=g, dtype=torch.float64))
                             for _ in range(3))])  # fmt: skip
    got = pair_metrics(x, {0: (torch.tensor([1, 1]), torch.tensor([2, 3]))}, device="cpu")[0]
    d = (x[1:] - base).numpy()  # exact float64 deltas
    for k, (a, b) in enumerate([(0, 1), (0, 2)]):
        assert got["pearson"][k] == pytest.approx(np.corrcoef(d[a], d[b])[0, 1], abs=1e-6)
        cos = d[a] @ d[b] / np.linalg.norm(d[a]) / np.linalg.norm(d[b])
        assert got["cosine"][k] == pytest.approx(cos, abs=1e-6)
        assert 0.45 < got["pearson"][k] < 0.55  # half of each delta is shared


@pytest.mark.gpu
def test_cuda_equals_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    x, base = _family(300, 20000)
    cpu = all_pairs(x, base, device="cpu", config=KinshipConfig(block=64))
    cuda = all_pairs(x, base, device="cuda", config=KinshipConfig(block=128))
    for m in cpu:
        torch.testing.assert_close(cuda[m], cpu[m], rtol=1e-6, atol=1e-6, equal_nan=True)
    # the path `hubatlas kinship` takes: row references out of one Gram matrix
    pairs = {r: (torch.arange(0, 150), torch.arange(150, 300)) for r in (0, 42, None)}
    on_cpu = pair_metrics(x, pairs, device="cpu")
    on_cuda = pair_metrics(x, pairs, device="cuda", config=KinshipConfig(block=100, slab=4096))
    for r in pairs:
        for m in on_cpu[r]:
            torch.testing.assert_close(on_cuda[r][m], on_cpu[r][m], rtol=1e-6, atol=1e-6, equal_nan=True)


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
    real_data: Path, db_path: Path, tmp_path: Path
) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    weights = real_data / "weights"
    models = {f"real/{p.stem}": p for p in sorted((weights / "bert-tiny-finetunes").glob("*.safetensors"))}
    models.update(
        {
            f"random/{p.name}": p / "model.safetensors"
            for p in (weights / "tiny-random-checkpoints").iterdir()
            if p.is_dir()
        }
    )
    # and a random initialisation with exactly the first fine-tune's tensor names and shapes (BERT's init)
    with safe_open(str(next(iter(models.values()))), framework="pt") as f:
        shapes = {n: f.get_slice(n).get_shape() for n in f.keys()}  # noqa: SIM118
    g = torch.Generator().manual_seed(0)
    save_file(
        {n: torch.randn(s, generator=g) * 0.02 for n, s in shapes.items()}, str(tmp_path / "init.safetensors")
    )
    models["random/bert-tiny-init"] = tmp_path / "init.safetensors"
    con = connect(db_path)
    upsert(con, "models", [ModelRecord(id=m, source="local", location=str(p)) for m, p in models.items()])
    con.close()
    runner = CliRunner()
    out = runner.invoke(app, ["sample", "--all", "--db", str(db_path), "-q"])
    assert out.exit_code == 0 and "sampled 6 models" in out.stdout, out.output
    assert runner.invoke(app, ["kinship", "--db", str(db_path), "--device", "cpu", "-q"]).exit_code == 0
    con = connect(db_path)
    real = sorted(m for m in models if m.startswith("real/"))
    rows = {(r["a"], r["b"]): r for r in query_dicts(con, "SELECT * FROM kinship")}
    # the downloaded random checkpoints share no shapes with the BERTs or each other
    init = [tuple(sorted((r, "random/bert-tiny-init"))) for r in real]
    assert set(rows) == {tuple(real), *init}
    pair = rows[tuple(real)]
    assert pair["pearson"] > 0.9 and pair["cosine"] > 0.9
    for key in init:
        assert abs(rows[key]["pearson"]) < 0.05 and abs(rows[key]["cosine"]) < 0.05
    layers = dict(
        con.execute("SELECT layer, cosine FROM kinship_layers WHERE a = ? AND b = ?", real).fetchall()
    )
    assert set(layers) == {"layer.0", "layer.1", "other"}  # other: the pooler
    assert layers["layer.0"] > 0.9 and layers["layer.1"] > 0.9


def test_small_zoo_ground_truth_is_recovered(zoo_dir: Path, db_path: Path) -> None:
    """Real trained models: copies are near identical, siblings closer than cousins, archs never mixed."""
    models = json.loads((zoo_dir / "lineage.json").read_text())["models"]
    con = connect(db_path)
    upsert(
        con,
        "models",
        [ModelRecord(id=m["id"], source="zoo", location=str(zoo_dir / m["path"])) for m in models],
    )
    upsert(
        con, "edges", [EdgeRecord(m["id"], p, m["relation"], "card") for m in models for p in m["parents"]]
    )
    con.close()
    runner = CliRunner()
    assert runner.invoke(app, ["sample", "--all", "--db", str(db_path), "-q"]).exit_code == 0
    out = runner.invoke(app, ["kinship", "--db", str(db_path), "--device", "cpu", "-q"])
    assert out.exit_code == 0, out.output
    con = connect(db_path)
    for a, copy in [
        ("zoo/expert-copy-1", "zoo/expert-copy-1-fp16"),
        ("zoo/expert-sort-1", "zoo/expert-sort-1-bf16"),
    ]:
        k = _kin(con, a, copy)
        assert k["cosine"] > 0.999 and k["l2"] < 0.02 * _kin(con, a, "zoo/base-llama")["l2"]
    nearest = query_dicts(
        con, "SELECT kin FROM nearest_kin WHERE model_id = 'zoo/expert-copy-1' ORDER BY rank"
    )
    assert nearest[0]["kin"] == "zoo/expert-copy-1-fp16"
    cousins = _kin(con, "zoo/expert-copy-1-rotate", "zoo/expert-add-1-v2")  # grandchildren via two experts
    for sib in (
        _kin(con, "zoo/expert-copy-1", "zoo/expert-copy-2"),
        _kin(con, "zoo/expert-sort-1", "zoo/expert-sort-2"),
    ):
        assert sib["reference"] == cousins["reference"] == "zoo/base-llama"
        assert sib["pearson"] > cousins["pearson"] + 0.2 and sib["l2"] < cousins["l2"]
    run = [f"zoo/reverse-run-ckpt-{i}" for i in (1, 2, 3)]
    assert _kin(con, run[0], run[1])["l2"] < _kin(con, run[0], run[2])["l2"]
    wide = {m["id"] for m in models if m["arch"] == "wide"}
    crossed = con.execute("SELECT count(*) FROM kinship WHERE (a IN (SELECT unnest(?))) <> (b IN (SELECT unnest(?)))",
                          [sorted(wide), sorted(wide)]).fetchone()[0]  # fmt: skip
    assert crossed == 0 and _kin(con, "zoo/base-wide", "zoo/wide-expert-copy-1")["pearson"] > 0.5


def test_an_adapter_that_does_not_fit_its_base_is_left_out_and_the_run_goes_on(
    ckpt_root: Path, db_path: Path, tmp_path: Path
) -> None:
    g = torch.Generator().manual_seed(9)
    small = {f"base_model.model.model.layers.0.self_attn.q_proj.lora_{p}.weight": torch.randn(s, generator=g)
             for p, s in (("A", (ck.RANK, 64)), ("B", (64, ck.RANK)))}  # fmt: skip  # for a 64-wide base
    ck.write_adapter(tmp_path, "bad/lora-misfit", small, "zoo/base")
    con = connect(db_path)
    locations = {"zoo/base": ckpt_root / "zoo/base", "zoo/ft-a": ckpt_root / "zoo/ft-a",
                 "bad/lora-misfit": tmp_path / "bad/lora-misfit"}  # fmt: skip
    upsert(con, "models", [ModelRecord(id=m, source="local", location=str(p)) for m, p in locations.items()])
    con.close()
    runner = CliRunner()
    out = runner.invoke(app, ["sample", "--all", "--db", str(db_path), "-q"])
    assert out.exit_code == 0 and "sampled 3 models" in out.stdout, out.output
    out = runner.invoke(app, ["kinship", "--db", str(db_path), "--device", "cpu", "-q"])
    assert out.exit_code == 0, out.output
    warning = "bad/lora-misfit: adapter update layers.0.self_attn.q_proj.weight [64, 64] does not fit its base zoo/base ([128, 128]); left out"
    assert warning in out.stderr
    con = connect(db_path)
    assert con.execute("SELECT a, b FROM kinship").fetchall() == [("zoo/base", "zoo/ft-a")]


def _sampled_file_of(db_path: Path, ckpt_root: Path, model_id: str) -> Path:
    """Sample the test atlas; the sample file of one model."""
    _atlas(db_path, ckpt_root, lineage=True)
    assert CliRunner().invoke(app, ["sample", "--all", "--db", str(db_path), "-q"]).exit_code == 0
    con = connect(db_path)
    (path,) = con.execute("SELECT location FROM weight_samples WHERE model_id = ?", [model_id]).fetchone()
    con.close()
    return Path(path)


def test_a_broken_sample_file_is_skipped_with_a_warning(ckpt_root: Path, db_path: Path) -> None:
    _sampled_file_of(db_path, ckpt_root, "zoo/ft-b1").write_bytes(b"not a safetensors file")
    runner = CliRunner()
    out = runner.invoke(app, ["kinship", "--db", str(db_path), "--device", "cpu", "-q"])
    assert out.exit_code == 0, out.output
    assert "zoo/ft-b1: sample file" in out.stderr and "skipped" in out.stderr
    con = connect(db_path)
    assert con.execute("SELECT count(*) FROM kinship WHERE 'zoo/ft-b1' IN (a, b)").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM kinship WHERE a = 'zoo/ft-a1'").fetchone()[0] > 0


def test_kinship_without_samples_says_what_to_run(db_path: Path) -> None:
    out = CliRunner().invoke(app, ["kinship", "--db", str(db_path), "--device", "cpu"])
    assert out.exit_code != 0
    assert out.stderr.strip().splitlines() == [
        "error: no models sampled with scheme 'default' (run `hubatlas sample --all --scheme default`)"
    ]


def test_a_sample_from_an_earlier_scheme_definition_is_skipped_with_a_warning(
    ckpt_root: Path, db_path: Path
) -> None:
    from analysis.sampler import SampleResult, TensorSample
    from analysis.samples import load_sample, save_sample

    b1 = _sampled_file_of(db_path, ckpt_root, "zoo/ft-b1")
    # two samples rewritten as an older version of the scheme would have left them
    for model_id in ("zoo/ft-a2", "zoo/ft-b1"):
        path = b1.with_name(b1.name.replace("ft-b1", model_id.split("/")[1]))
        old = load_sample(path)
        tensors = tuple(TensorSample(n, shape, v) for n, (shape, v) in old.tensors.items())
        save_sample(SampleResult(model_id, "default", "ok", fingerprint="0ld", tensors=tensors), path)
    runner = CliRunner()
    out = runner.invoke(app, ["kinship", "--db", str(db_path), "--device", "cpu", "-q"])
    assert out.exit_code == 0, out.output
    stale = [line for line in out.stderr.splitlines() if "earlier definition" in line]
    assert stale == [
        "warning: zoo/ft-a2, zoo/ft-b1: sampled under an earlier definition of scheme 'default' (other "
        "coordinates); left out: sample them again with `hubatlas sample --all --scheme default`"
    ]
    con = connect(db_path)
    assert con.execute("SELECT count(*) FROM kinship WHERE 'zoo/ft-b1' IN (a, b)").fetchone()[0] == 0
    con.close()
    assert runner.invoke(app, ["sample", "--all", "--db", str(db_path), "-q"]).exit_code == 0
    out = runner.invoke(app, ["kinship", "--db", str(db_path), "--device", "cpu", "-q"])
    assert "earlier definition" not in out.stderr
    con = connect(db_path)
    assert con.execute("SELECT count(*) FROM kinship WHERE 'zoo/ft-b1' IN (a, b)").fetchone()[0] > 0
