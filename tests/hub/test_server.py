"""The replay Hub speaks the Hub's wire format: checked with the real huggingface_hub client and recordings."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import get_session

from tests.hub.server import ReplayHub

pytestmark = pytest.mark.network

PHI2 = "microsoft/phi-2"


def _children(records: list[dict[str, Any]], parent: str) -> list[str]:
    return [r["info"]["id"] for r in records if f"base_model:{parent}" in r["info"]["tags"]]


def test_listing_children_paginates_with_absolute_link(replay_hub: ReplayHub, hub_records: list) -> None:
    api = HfApi(endpoint=replay_hub.url)
    models = list(api.list_models(filter=f"base_model:{PHI2}", expand=["sha", "tags", "childrenModelCount"]))
    expected = _children(hub_records, PHI2)
    assert [m.id for m in models] == expected
    assert replay_hub.counts["list"] == -(-len(expected) // 100)  # pages of 100
    assert all(isinstance(m.children_model_count, int) for m in models)
    assert all(m.sha for m in models)
    first = get_session().get(f"{replay_hub.url}/api/models", params={"filter": f"base_model:{PHI2}"})
    assert first.links["next"]["url"].startswith(replay_hub.url + "/api/models?")


def test_filters_are_anded_and_author_search_work(replay_hub: ReplayHub, hub_records: list) -> None:
    api = HfApi(endpoint=replay_hub.url)
    both = [f"base_model:{PHI2}", "safetensors"]
    expected = [r["info"]["id"] for r in hub_records if all(t in r["info"]["tags"] for t in both)]
    assert 0 < len(expected) < len(_children(hub_records, PHI2))
    assert [m.id for m in api.list_models(filter=both)] == expected
    by_author = [m.id for m in api.list_models(author="mradermacher")]
    assert by_author and all(i.startswith("mradermacher/") for i in by_author)
    found = [m.id for m in api.list_models(search="phi-2", author="microsoft")]
    assert found == [PHI2]


def test_expand_returns_only_asked_fields_and_children_counts(
    replay_hub: ReplayHub, hub_records: list
) -> None:
    body = (
        get_session()
        .get(f"{replay_hub.url}/api/models", params=[("search", "phi-2"), ("author", "microsoft"),
                                                     ("expand[]", "childrenModelCount"), ("expand[]", "sha")])
        .json()
    )  # fmt: skip
    assert set(body[0]) == {"_id", "id", "childrenModelCount", "sha"}
    assert body[0]["childrenModelCount"] == len(_children(hub_records, PHI2))
    with pytest.raises(ValueError):  # the client refuses; the server answers 400 to the raw request
        next(iter(HfApi(endpoint=replay_hub.url).list_models(expand=["sha"], full=True)))
    bad = get_session().get(f"{replay_hub.url}/api/models", params={"expand": "sha", "full": "true"})
    assert bad.status_code == 400 and "error" in bad.json()


def test_children_counts_per_relation(hub_records: list) -> None:
    with ReplayHub(records=hub_records, children_counts="dict") as hub:
        info = HfApi(endpoint=hub.url).model_info(PHI2, expand=["childrenModelCount"])
    assert info.children_model_count == {"finetune": len(_children(hub_records, PHI2))}


def test_full_and_card_data_listing(replay_hub: ReplayHub) -> None:
    api = HfApi(endpoint=replay_hub.url)
    [model] = api.list_models(search="phi-2", author="microsoft", full=True, cardData=True)
    assert model.card_data is not None and model.card_data.license == "mit"
    assert model.siblings and model.sha


def test_model_info_revision_and_errors(replay_hub: ReplayHub, hub_records: list) -> None:
    api = HfApi(endpoint=replay_hub.url)
    record = next(r["info"] for r in hub_records if r["info"]["id"] == PHI2)
    info = api.model_info(PHI2)
    assert (info.sha, info.downloads, info.likes) == (record["sha"], record["downloads"], record["likes"])
    assert api.model_info(PHI2, revision=record["sha"]).sha == record["sha"]
    with pytest.raises(RevisionNotFoundError):
        api.model_info(PHI2, revision="0" * 40)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("nobody/nothing-here")
    raw = get_session().get(f"{replay_hub.url}/api/models/nobody/nothing-here")
    assert raw.status_code == 404 and raw.headers["X-Error-Code"] == "RepoNotFound"


def test_renamed_repo_redirects_like_the_hub(hub_records: list) -> None:
    with ReplayHub(records=hub_records, redirects={"phi-2": PHI2}) as hub:
        raw = get_session().get(f"{hub.url}/api/models/phi-2", follow_redirects=False)
        assert raw.status_code == 307 and raw.headers["Location"] == f"/api/models/{PHI2}"
        assert HfApi(endpoint=hub.url).model_info("phi-2").id == PHI2


def test_download_readme_with_metadata(replay_hub: ReplayHub, hub_records: list, tmp_path: Path) -> None:
    record = next(r for r in hub_records if r["info"]["id"] == PHI2)
    meta = get_hf_file_metadata(hf_hub_url(PHI2, "README.md", endpoint=replay_hub.url))
    assert meta.commit_hash == record["info"]["sha"]
    assert meta.size == len(record["readme"].encode()) and meta.etag
    path = hf_hub_download(PHI2, "README.md", endpoint=replay_hub.url, cache_dir=tmp_path)
    assert Path(path).read_text(encoding="utf-8") == record["readme"]
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(PHI2, "no-such-file.bin", endpoint=replay_hub.url, cache_dir=tmp_path)


def test_range_reads_and_resumed_download(replay_hub: ReplayHub, hub_records: list, tmp_path: Path) -> None:
    readme = next(r for r in hub_records if r["info"]["id"] == PHI2)["readme"].encode()
    url = hf_hub_url(PHI2, "README.md", endpoint=replay_hub.url)
    part = get_session().get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(readme)}"
    assert part.content == readme[10:20]
    assert get_session().get(url, headers={"Range": f"bytes={len(readme) + 5}-"}).status_code == 416
    # A body cut mid-way: the client resumes with a Range request and must get the right bytes.
    replay_hub.add_fault(r"/resolve/.*README\.md", "truncate", method="GET")
    path = hf_hub_download(PHI2, "README.md", endpoint=replay_hub.url, cache_dir=tmp_path)
    assert Path(path).read_bytes() == readme
    assert any(e.status == 206 for e in replay_hub.log if e.kind == "resolve")


def test_faults_are_retried_by_the_client(replay_hub: ReplayHub) -> None:
    replay_hub.add_fault(r"^/api/models\?", "429", times=1, retry_after=0)
    replay_hub.add_fault(r"^/api/models\?", "500", times=1)
    models = list(HfApi(endpoint=replay_hub.url).list_models(author="microsoft"))
    assert [m.id for m in models] == [PHI2]
    assert [e.status for e in replay_hub.log] == [429, 500, 200]


def test_serves_repo_folders_from_disk(tmp_path: Path) -> None:
    repo = tmp_path / "zoo" / "tiny-ft"
    repo.mkdir(parents=True)
    (repo / "README.md").write_text("---\nbase_model: zoo/tiny-base\nlicense: mit\n---\n# tiny\n")
    (repo / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    )
    (repo / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    with ReplayHub(repo_dirs=[tmp_path]) as hub:
        api = HfApi(endpoint=hub.url)
        info = api.model_info("zoo/tiny-ft")
        assert "base_model:finetune:zoo/tiny-base" in info.tags
        assert {s.rfilename for s in info.siblings} == {"README.md", "config.json", "model.safetensors"}
        assert [m.id for m in api.list_models(filter="base_model:zoo/tiny-base")] == ["zoo/tiny-ft"]
        url = hf_hub_url("zoo/tiny-ft", "model.safetensors", endpoint=hub.url)
        part = get_session().get(url, headers={"Range": "bytes=0-7"})
        assert part.status_code == 206 and part.content == bytes(range(8))
        assert part.headers["X-Repo-Commit"] == info.sha
        assert [(e.kind, e.status) for e in hub.log[-2:]] == [("resolve", 302), ("cdn", 206)]
        assert hub.log[-1].body_bytes == 8
        # Weights, as on the Hub: a 302 to a signed CDN URL, size and sha256 in X-Linked-* headers.
        weights = (repo / "model.safetensors").read_bytes()
        meta = get_hf_file_metadata(url)
        assert meta.size == 1024 and meta.etag == hashlib.sha256(weights).hexdigest()
        assert meta.location.startswith(f"{hub.cdn_url}/cdn/zoo/tiny-ft/") and meta.commit_hash == info.sha
        path = hf_hub_download("zoo/tiny-ft", "model.safetensors", endpoint=hub.url, cache_dir=tmp_path / "c")
        assert Path(path).read_bytes() == weights
        tail = get_session().get(meta.location, headers={"Range": "bytes=-4"})
        assert tail.headers["Content-Range"] == "bytes 1020-1023/1024" and tail.content == weights[-4:]
        expired = meta.location.replace("Expires=", "Expires=1")  # another expiry: the signature fails
        assert get_session().get(expired).status_code == 403
        assert get_session().head(meta.location).status_code == 403  # signed for GET only


def test_wire_format_matches_recorded_hub_exchanges(replay_hub: ReplayHub, real_data: Path) -> None:
    recorded = yaml.safe_load(
        (real_data / "hub-client-recordings" / "InferenceApiTest.test_simple_inference.yaml").read_text()
    )["interactions"]
    redirect, info = recorded[0]["response"], recorded[1]["response"]
    ours = get_session().get(f"{replay_hub.url}/api/models/{PHI2}")
    assert ours.headers["Content-Type"] == info["headers"]["Content-Type"][0]
    assert ours.headers["ETag"].startswith('W/"') and info["headers"]["ETag"][0].startswith('W/"')
    recorded_exposed = set(info["headers"]["Access-Control-Expose-Headers"][0].split(","))
    assert {
        "X-Repo-Commit",
        "X-Error-Code",
        "X-Error-Message",
        "ETag",
        "Link",
        "Content-Range",
    } <= recorded_exposed
    assert recorded_exposed & set(ours.headers["Access-Control-Expose-Headers"].split(",")) >= {
        "X-Repo-Commit", "X-Error-Code", "ETag", "Link", "Content-Range"
    }  # fmt: skip
    recorded_keys = set(json.loads(info["body"]["string"]))
    assert {
        "_id",
        "id",
        "modelId",
        "author",
        "sha",
        "lastModified",
        "tags",
        "cardData",
        "siblings",
    } <= recorded_keys
    assert {"_id", "id", "modelId", "author", "sha", "lastModified", "tags", "cardData", "siblings"} <= set(
        ours.json()
    )
    with ReplayHub(records=[], redirects={"bert-base-uncased": "google-bert/bert-base-uncased"}) as hub:
        ours_redirect = get_session().get(f"{hub.url}/api/models/bert-base-uncased", follow_redirects=False)
    assert ours_redirect.status_code == redirect["status"]["code"]
    assert ours_redirect.headers["Location"] == redirect["headers"]["Location"][0]
    assert ours_redirect.text == redirect["body"]["string"]
    assert ours_redirect.headers["Content-Type"] == redirect["headers"]["Content-Type"][0]


def test_runs_as_a_module_for_manual_use(real_data: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo = Path(__file__).resolve().parents[2]
    cmd = [
        sys.executable,
        "-m",
        "tests.hub.server",
        "--data",
        str(real_data / "hub-trees-2025"),
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "1496 models" in proc.stdout.readline()
        deadline = time.monotonic() + 10
        while True:
            try:
                info = HfApi(endpoint=f"http://127.0.0.1:{port}").model_info(PHI2)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert info.id == PHI2
    finally:
        proc.terminate()
        proc.wait(timeout=10)
