"""Scanning folders of local checkpoints: the zoo registers with its declared lineage; bad folders are flags."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from atlas.cli import app
from atlas.db import connect, query_dicts
from atlas.store import write_bundles
from crawlers.local import folder_id, scan


def _truth(zoo_dir: Path) -> dict[str, dict]:
    return {m["id"]: m for m in json.loads((zoo_dir / "lineage.json").read_text())["models"]}


@pytest.fixture(scope="module")
def zoo_bundles(zoo_dir: Path) -> dict:
    return {b.model.id: b for b in scan(zoo_dir)}


def test_scan_registers_every_zoo_model(zoo_dir: Path, zoo_bundles: dict) -> None:
    truth = _truth(zoo_dir)
    assert set(zoo_bundles) == set(truth)
    for mid, b in zoo_bundles.items():
        assert b.model.source == "zoo" and b.model.location == str((zoo_dir / mid).resolve())
        created = datetime.fromisoformat(truth[mid]["created_at"].replace("Z", "+00:00"))
        assert b.model.created_at == created.astimezone(timezone.utc).replace(tzinfo=None), mid
        # The only thing flagged: an adapter hiding its base behind the trainer's local folder.
        hidden_adapter = truth[mid]["kind"] == "adapter" and not truth[mid]["declared"]
        assert [f.flag for f in b.flags] == (["local_base_path"] if hidden_adapter else []), mid
        assert {f.path for f in b.files} >= {"README.md"}
        evals = {
            next(t for t in truth[mid]["scores"] if t in f"{e.task} {e.dataset}"): e.value for e in b.evals
        }
        assert evals == truth[mid]["scores"], mid


def test_declared_edges_only_where_declared(zoo_dir: Path, zoo_bundles: dict) -> None:
    for mid, m in _truth(zoo_dir).items():
        card = {e.parent for e in zoo_bundles[mid].edges if e.origin == "card"}
        if m["declared"] and m["parents"]:
            assert card == set(m["parents"]), mid
            relations = {e.relation for e in zoo_bundles[mid].edges if e.origin == "card"}
            assert relations == {"finetune" if m["kind"] == "checkpoint" else m["kind"]}, mid
        else:
            good = [e for e in zoo_bundles[mid].edges if e.flag is None and e.parent in set(_truth(zoo_dir))]
            assert not good, f"{mid} is undeclared but scan found {good}"


def test_tensors_and_architecture_stored(zoo_dir: Path, zoo_bundles: dict, db_path: Path) -> None:
    con = connect(db_path)
    write_bundles(con, list(zoo_bundles.values()))
    rows = query_dicts(
        con, "SELECT model_id, count(*) AS n, max(len(shape)) AS rank FROM tensors GROUP BY model_id"
    )
    per_model = {r["model_id"]: r["n"] for r in rows}
    assert per_model["zoo/base-llama"] == 2 + 2 * 9 + 1  # embed, lm_head, 9 per layer, final norm
    assert per_model["zoo/base-wide"] == 2 + 3 * 9 + 1
    assert per_model["zoo/lora-copy"] == 8  # A and B for q, v in 2 layers
    models = {r["id"]: r for r in query_dicts(con, "SELECT * FROM models")}
    assert models["zoo/base-llama"]["architecture"] == "LlamaForCausalLM"
    assert models["zoo/base-wide"]["num_parameters"] > models["zoo/base-llama"]["num_parameters"]
    n_edges = query_dicts(con, "SELECT count(*) AS n FROM edges WHERE origin = 'card'")[0]["n"]
    assert n_edges == sum(len(m["parents"]) for m in _truth(zoo_dir).values() if m["declared"])
    con.close()


def _copy(zoo_dir: Path, dest: Path, mid: str, new: str) -> Path:
    folder = dest / new
    shutil.copytree(zoo_dir / mid, folder)
    return folder


def test_bad_folders_are_flagged_not_crashed(zoo_dir: Path, tmp_path: Path) -> None:
    truncated = _copy(zoo_dir, tmp_path, "zoo/expert-copy-1", "org/truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[:100])
    latin = _copy(zoo_dir, tmp_path, "zoo/expert-sort-1", "org/latin1-card")
    (latin / "README.md").write_bytes("---\nlicense: mit\n---\n# Modèle".encode("latin-1"))
    noconf = _copy(zoo_dir, tmp_path, "zoo/expert-add-1", "org/no-config")
    (noconf / "config.json").unlink()
    (noconf / "README.md").unlink()
    badconf = _copy(zoo_dir, tmp_path, "zoo/expert-rotate-1", "org/bad-config")
    (badconf / "config.json").write_text("{not json")
    (badconf / "README.md").write_text("---\nbase_model: [unclosed\n---\ntext")
    (tmp_path / "org" / "empty-notes").mkdir()  # not a model folder: ignored
    (tmp_path / "org" / "empty-notes" / "notes.txt").write_text("x")

    bundles = {b.model.id: b for b in scan(tmp_path)}
    assert set(bundles) == {"org/truncated", "org/latin1-card", "org/no-config", "org/bad-config"}
    flags = {mid: {f.flag: f.detail for f in b.flags} for mid, b in bundles.items()}
    assert (
        "bad_safetensors" in flags["org/truncated"]
        and "org/truncated" in flags["org/truncated"]["bad_safetensors"]
    )
    assert not bundles["org/truncated"].tensors
    assert "non_utf8_card" in flags["org/latin1-card"]
    assert bundles["org/latin1-card"].model.license == "mit"
    assert "no_config" in flags["org/no-config"] and len(bundles["org/no-config"].tensors) == 21
    assert "bad_config" in flags["org/bad-config"]
    assert any("yaml" in f for f in flags["org/bad-config"])
    assert all(b.model.source == "local" for b in bundles.values())


def test_sharded_checkpoint_and_missing_shard(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    folder = tmp_path / "acme" / "sharded"
    folder.mkdir(parents=True)
    shards = {"model-00001-of-00002.safetensors": ["a", "b"], "model-00002-of-00002.safetensors": ["c"]}
    for name, keys in shards.items():
        save_file({k: torch.randn(3, 4, generator=g) for k in keys}, str(folder / name))
    index = {"weight_map": {k: name for name, keys in shards.items() for k in keys}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "config.json").write_text(
        json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    )
    (b,) = scan(tmp_path)
    assert b.model.id == "acme/sharded" and b.model.source == "local"
    assert sorted(t.name for t in b.tensors) == ["a", "b", "c"] and not b.flags
    assert b.model.num_parameters == 36

    (folder / "model-00002-of-00002.safetensors").unlink()
    (b,) = scan(tmp_path)
    flags = {f.flag: f.detail for f in b.flags}
    assert flags["missing_shard"] == "model-00002-of-00002.safetensors"
    assert sorted(t.name for t in b.tensors) == ["a", "b"]
    (alone,) = scan(folder)  # a single model folder scans as itself
    assert alone.model.id == "local/sharded"


def test_a_folder_of_a_pytorch_checkpoint_alone_is_a_model(tmp_path: Path) -> None:
    (tmp_path / "acme" / "old").mkdir(parents=True)
    torch.save({"w": torch.randn(8, 4)}, str(tmp_path / "acme" / "old" / "pytorch_model.bin"))
    (b,) = scan(tmp_path)
    assert b.model.id == "acme/old" and [f.path for f in b.files] == ["pytorch_model.bin"]
    # its tensors come from the checkpoint's zip directory and pickle, as safetensors headers do
    assert [(t.name, t.dtype, t.shape) for t in b.tensors] == [("w", "F32", (8, 4))]
    assert b.model.num_parameters == 32
    (tmp_path / "acme" / "legacy").mkdir()
    torch.save({"w": torch.randn(8, 4)}, str(tmp_path / "acme" / "legacy" / "pytorch_model.bin"),
               _use_new_zipfile_serialization=False)  # fmt: skip
    legacy = next(b for b in scan(tmp_path) if b.model.id == "acme/legacy")
    assert (
        not legacy.tensors
        and "not a zip archive" in {f.flag: f.detail for f in legacy.flags}["unsupported_weights"]
    )


def test_a_half_precision_copy_beside_the_weights_counts_its_parameters_once(tmp_path: Path) -> None:
    folder = tmp_path / "acme" / "m"
    folder.mkdir(parents=True)
    w = torch.randn(8, 4)
    save_file({"w": w}, str(folder / "model.safetensors"))
    save_file({"w": w.half()}, str(folder / "model.fp16.safetensors"))
    (b,) = scan(tmp_path)
    assert b.model.num_parameters == 32 and len(b.tensors) == 2  # both headers kept, one model's parameters


def test_folder_ids(tmp_path: Path) -> None:
    assert folder_id(tmp_path, tmp_path / "org" / "m") == "org/m"
    assert folder_id(tmp_path, tmp_path / "m") == "local/m"
    assert folder_id(tmp_path / "m", tmp_path / "m") == "local/m"
    assert folder_id(tmp_path, tmp_path / "org" / "m" / "checkpoint-500") == "org/m--checkpoint-500"
    # a trainer's checkpoint inside a model folder is named after that model, whatever the depth
    (tmp_path / "run" / "checkpoint-5").mkdir(parents=True)
    (tmp_path / "run" / "model.safetensors").write_bytes(b"")
    assert folder_id(tmp_path, tmp_path / "run" / "checkpoint-5") == "local/run--checkpoint-5"
    assert folder_id(tmp_path / "run", tmp_path / "run" / "checkpoint-5") == "local/run--checkpoint-5"


def test_scan_command_writes_the_database(zoo_dir: Path, db_path: Path) -> None:
    result = CliRunner().invoke(app, ["scan", str(zoo_dir), "--db", str(db_path), "--quiet"])
    assert result.exit_code == 0, result.output
    n = len(_truth(zoo_dir))
    n_local = sum(m["kind"] == "adapter" and not m["declared"] for m in _truth(zoo_dir).values())
    assert f"scanned {n} models" in result.output and f"{n_local} flags" in result.output
    con = connect(db_path, read_only=True)
    assert query_dicts(con, "SELECT count(*) AS n FROM models WHERE source = 'zoo'")[0]["n"] == n
    children = query_dicts(con, "SELECT child FROM lineage WHERE parent = 'zoo/expert-add-1'")
    con.close()
    truth = {
        m["id"] for m in _truth(zoo_dir).values() if "zoo/expert-add-1" in m["parents"] and m["declared"]
    }
    assert {r["child"] for r in children} == truth

    missing = CliRunner().invoke(app, ["scan", str(zoo_dir / "nope"), "--db", str(db_path)])
    assert missing.exit_code == 2 and "not a folder" in missing.output
    bad_size = CliRunner().invoke(app, ["zoo", str(db_path.parent / "z"), "--size", "huge"])
    assert bad_size.exit_code == 2 and "unknown zoo size" in bad_size.output


def test_adapter_with_a_scanned_local_base_is_linked(zoo_dir: Path, tmp_path: Path) -> None:
    """An organisation's adapter trained on its own base folder: when that folder is scanned too, the path
    is the adapter's declared base; a path outside the scan stays a flag for inference to puzzle out."""
    truth = _truth(zoo_dir)
    hidden = next(m for m in truth.values() if m["kind"] == "adapter" and not m["declared"])
    base = _copy(zoo_dir, tmp_path, hidden["parents"][0], "acme/base")
    pointed = {
        "by-absolute-path": str(base),
        "by-relative-path": "../base",
        "elsewhere": "/home/trainer/base",
    }
    for name, path in pointed.items():
        folder = _copy(zoo_dir, tmp_path, hidden["id"], f"acme/{name}")
        config = json.loads((folder / "adapter_config.json").read_text())
        (folder / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": path}))
    bundles = {b.model.id: b for b in scan(tmp_path)}
    for name in ("by-absolute-path", "by-relative-path"):
        b = bundles[f"acme/{name}"]
        assert [(e.parent, e.relation, e.origin) for e in b.edges] == [
            ("acme/base", "adapter", "adapter_config")
        ]
        assert "local_base_path" not in {f.flag for f in b.flags}
    elsewhere = bundles["acme/elsewhere"]
    assert not elsewhere.edges
    assert [(f.flag, f.detail) for f in elsewhere.flags] == [("local_base_path", "/home/trainer/base")]
