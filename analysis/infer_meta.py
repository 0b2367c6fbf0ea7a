"""Parents from metadata beyond the declared fields: card text phrasings, adapters' local base folders,
repo-name suffixes, upload time.

Pure functions over `ModelFacts`; the phrasings, name suffixes and calibrated confidences are data
(registries below). Every edge names its evidence kind in `evidence`, so precision per kind is measurable.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from atlas.records import EdgeRecord

# The Hub reports this creation time for every model older than it: a floor, not a date.
CREATED_AT_FLOOR = datetime(2022, 3, 3)


@dataclass(frozen=True)
class ModelFacts:
    """What metadata inference reads of one model."""

    id: str
    created_at: datetime | None = None
    text: str | None = None  # card body without front matter
    downloads: int | None = None
    local_base_paths: tuple[str, ...] = ()  # adapter_config.json bases that are local folders, not repos


@dataclass(frozen=True)
class Phrase:
    """A card-text phrasing naming a parent; `pattern` captures the parent id (group `id`)."""

    kind: str
    relation: str
    pattern: re.Pattern[str]


_LINK = r"\[[^\]]{1,200}\]\(\s*<?(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/(?P<id>[\w.\-]+(?:/[\w.\-]+)?)[^)]*\)"
_BARE = r"(?:\[|`|\*\*)?(?P<id>[\w.\-]+/[\w.\-]+)(?:\]|`|\*\*)?"
_URL = r"<?(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/(?P<idu>[\w.\-]+/[\w.\-]+)"
_BARE_B = _BARE.replace("<id>", "<idb>")
# A parent named by a markdown link, a bare URL or an owner/name, in that order of preference.
_ANY = "(?:" + _LINK + "|" + _URL + "|" + _BARE_B + ")"


def _p(regex: str) -> re.Pattern[str]:
    return re.compile(regex, re.IGNORECASE)


# Phrasings, most specific first; the first kind that yields a parent for a model wins.
CARD_PHRASES: tuple[Phrase, ...] = (
    Phrase("trainer_link", "finetune", _p(r"fine-?tuned version of\s+" + _LINK)),
    Phrase("trainer_plain", "finetune", _p(r"fine-?tuned version of\s+\[(?P<id>[\w.\-]+(?:/[\w.\-]+)?)\]")),
    Phrase("quantized_of", "quantized",
           _p(r"(?:quantized|quantised|quantizations?|quants?|gguf|awq|gptq|exl2)\s+(?:version|model files|files|format)?\s*(?:of|for)\s+" + _ANY + "")),
    Phrase("original_model", "unknown", _p(r"original model(?:\s*card)?\s*[:*]*\s*" + _ANY + "")),
    Phrase("merge_list", "merge", _p(r"^\s*[*-]\s+" + _LINK + r"|^\s*[*-]\s+(?P<id2>[\w.\-]+/[\w.\-]+)\s*$")),
    Phrase("adapter_of", "adapter",
           _p(r"(?:lora|qlora|peft|adapter)\b[^.\n]{0,80}?\b(?:for|of|on|base model:?)\s+" + _ANY + "")),
    Phrase("distilled_from", "distill", _p(r"distill(?:ed|ation)?\s+(?:version\s+)?(?:of|from)\s+" + _ANY + "")),
    Phrase("finetuned_link", "finetune", _p(r"fine-?tuned\s+" + _LINK)),
    Phrase("base_model_named", "unknown", _p(r"base model\s*(?:is|was|:)\s*(?:the\s+)?" + _ANY)),
    Phrase("base_model_named", "unknown",
           _p(r"using\s+(?:the\s+)?" + _LINK + r"\s+as\s+(?:the\s+|a\s+|its\s+)?base model")),
    Phrase("finetuned_from", "finetune",
           _p(r"(?:fine-?tuned|trained|finetune)\s+(?:version\s+)?(?:of|from|on top of)\s+" + _ANY + "")),
    Phrase("based_on", "unknown",
           _p(r"(?:based on|built on|built upon|derived from|initiali[sz]ed from)\s+(?:the\s+)?" + _ANY + "")),
)  # fmt: skip

# The merge section of mergekit's card template; its bullet links are the merge's parents.
_MERGE_SECTION = _p(r"(?:models were included in the merge|merged using the .{0,80}? merge method)")
_MERGE_BASE = _p(r"using\s+(?:" + _LINK + "|" + _BARE_B + r")\s+as a base")

# Name tokens (split on - _ .) that mark a quantized export, and those that mark a format conversion.
QUANT_TOKENS = frozenset(
    [
        "gguf",
        "ggml",
        "awq",
        "gptq",
        "exl2",
        "exl3",
        "bnb",
        "2bit",
        "3bit",
        "4bit",
        "5bit",
        "6bit",
        "8bit",
        "int4",
        "int8",
        "nf4",
        "fp8",
        "fp4",
        "w4a16",
        "w8a8",
        "w8a16",
        "hqq",
        "aqlm",
        "quantized",
        "quant",
        "quants",
        "imatrix",
        "i1",
        "fp16",
        "bf16",
        "f16",
        "gptqmodel",
        "marlin",
        "eetq",
    ]
)
CONVERSION_TOKENS = frozenset(
    [
        "mlx",
        "onnx",
        "openvino",
        "ov",
        "coreml",
        "tflite",
        "ct2",
        "ctranslate2",
        "tensorrt",
        "trt",
        "mnn",
        "rknn",
    ]
)
# Quant-level tokens like q4_k_m, q8_0, 4bpw, 4.65bpw, 4b (as in -4b) are matched by pattern.
_QUANT_TOKEN_RE = re.compile(
    r"^(?:q\d(?:_k)?(?:_[msl0-9])*|iq\d\w*|\d+(?:\.\d+)?bpw|\d+bits?|\d+bpw\w*|h\d+)$"
)

# Calibrated confidence per evidence kind = its measured precision on hub-trees-2025 with declarations
# hidden (`python bench/bench_infer.py --calibrate`; see bench/results/infer.json). Kinds with too few
# observations there keep a conservative prior.
CONFIDENCE: dict[str, float] = {
    "trainer_link": 0.996,
    "trainer_plain": 0.9,
    "quantized_of": 0.923,
    "original_model": 0.968,
    "merge_list": 0.8,
    "merge_base": 0.8,
    "adapter_of": 0.7,
    "distilled_from": 0.6,
    "finetuned_link": 0.9,
    "base_model_named": 0.9,
    "finetuned_from": 0.857,
    "based_on": 0.979,
    "name_same_owner": 0.9,
    "name_other_owner": 0.848,
    # Adapter bases given as local folders. No dump here carries adapter_config.json, so these are
    # conservative priors, not measurements: a Hub cache folder spells the repo id exactly; a folder name
    # only says the trainer downloaded a model of that name.
    "local_hf_cache": 0.95,
    "local_folder_name": 0.8,
}
# Multipliers from upload time: a parent uploaded after its child is rarely right (0.3% of Hub edges).
TIME_FACTOR: dict[str, float] = {"agrees": 1.0, "unknown": 1.0, "contradicts": 0.2}

# Ids the Hub renamed when it gave legacy un-owned models an organisation.
LEGACY_IDS: dict[str, str] = {
    f"{name}": f"{owner}/{name}"
    for owner, names in {
        "google-bert": "bert-base-uncased bert-base-cased bert-large-uncased bert-large-cased "
        "bert-base-multilingual-cased bert-base-multilingual-uncased bert-base-chinese "
        "bert-large-uncased-whole-word-masking bert-base-german-cased",
        "distilbert": "distilbert-base-uncased distilbert-base-cased distilbert-base-multilingual-cased "
        "distilroberta-base distilgpt2 distilbert-base-uncased-distilled-squad "
        "distilbert-base-uncased-finetuned-sst-2-english",
        "FacebookAI": "roberta-base roberta-large xlm-roberta-base xlm-roberta-large roberta-large-mnli",
        "openai-community": "gpt2 gpt2-medium gpt2-large gpt2-xl openai-gpt",
        "google-t5": "t5-small t5-base t5-large t5-3b t5-11b",
        "albert": "albert-base-v2 albert-large-v2 albert-base-v1",
        "facebook": "bart-base bart-large bart-large-cnn bart-large-mnli",
    }.items()
    for name in names.split()
}


def normalize_id(raw: str) -> str | None:
    """A Hub model id from a link target or text, or None for what cannot be one (datasets, spaces, urls)."""
    s = raw.strip().strip("`*[]()<>\"'").rstrip("/.,;:")
    s = re.sub(r"^(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/", "", s)
    s = re.split(r"/(?:tree|blob|resolve|raw|commit|discussions)/", s)[0]
    if s.startswith(("datasets/", "spaces/", "docs/", "papers/", "blog/")) or not s:
        return None
    if not re.fullmatch(r"[\w.\-]+(?:/[\w.\-]+)?", s) or s.count("/") > 1 or ".." in s:
        return None
    if s.rpartition("/")[2].lower() in ("http", "https", "www"):  # a doubled link: `hf.co/org/https://...`
        return None
    if "/" not in s:
        if s in LEGACY_IDS:
            return LEGACY_IDS[s]
        if not re.search(r"[-_\d]", s) or len(s) < 4:  # a plain word: not a model id
            return None
    if s.lower().endswith((".md", ".html", ".pdf", ".png", ".jpg", ".json", ".py")):
        return None
    return s


def time_state(child: ModelFacts | None, parent: ModelFacts | None) -> str:
    """'agrees' when the parent is older, 'contradicts' when younger, 'unknown' without two real dates."""
    if child is None or parent is None or child.created_at is None or parent.created_at is None:
        return "unknown"
    if child.created_at < CREATED_AT_FLOOR:  # the child's date is a floor: its parent can't be younger
        return "unknown"
    if parent.created_at < CREATED_AT_FLOOR or parent.created_at <= child.created_at:
        return "agrees"
    return "contradicts"


def card_text_parents(model_id: str, text: str | None) -> list[tuple[str, str, str]]:
    """Parents a card's text names: (parent id, relation, evidence kind), most specific phrasing first."""
    if not text:
        return []
    text = text[:60_000]
    if _MERGE_SECTION.search(text):
        found = _merge_parents(text)
        if found:
            return [(p, "merge", kind) for p, kind in found if p != model_id]
    for phrase in CARD_PHRASES:
        if phrase.kind == "merge_list":
            continue
        for m in phrase.pattern.finditer(text):
            groups = m.groupdict()
            raw = next((v for g, v in groups.items() if g.startswith("id") and v), None)
            parent = normalize_id(raw) if raw else None
            if parent and parent.lower() != model_id.lower():
                return [(parent, phrase.relation, phrase.kind)]
    return []


def _merge_parents(text: str) -> list[tuple[str, str]]:
    out: dict[str, str] = {}
    base = _MERGE_BASE.search(text)
    if base:
        parent = normalize_id(base.group("id") or base.group("idb"))
        if parent:
            out[parent] = "merge_base"
    start = _MERGE_SECTION.search(text)
    tail = text[start.end() if start else 0 :][:4000]
    for line in tail.splitlines():
        m = CARD_PHRASES[4].pattern.match(line)
        if m:
            raw = m.group("id") or m.group("id2")
            parent = normalize_id(raw) if raw else None
            if parent:
                out.setdefault(parent, "merge_list")
        elif out and line.strip().startswith("#"):
            break
    return list(out.items())


def split_name_suffix(name: str) -> tuple[str, str] | None:
    """('Llama-2-7B-Chat', 'quantized') for 'Llama-2-7B-Chat-GGUF'; None when the name has no export suffix."""
    tokens = re.split(r"([-_.])", name)
    words, kinds = tokens[::2], set()
    while len(words) > 1:
        w = words[-1].lower()
        if w in QUANT_TOKENS or _QUANT_TOKEN_RE.match(w):
            kinds.add("quantized")
        elif w in CONVERSION_TOKENS:
            kinds.add("conversion")
        elif not w:
            pass
        else:
            break
        words.pop()
    if not kinds:
        return None
    stem = "".join(tokens[: 2 * len(words) - 1])
    return stem, ("quantized" if "quantized" in kinds else "conversion")


def _name_key(name: str) -> str:
    key = name.lower()
    return key[:-3] if key.endswith("-hf") else key


class NameIndex:
    """Models by lower-cased repo name (a trailing -hf ignored), to find an export's unquantized repo."""

    def __init__(self, models: Iterable[ModelFacts]) -> None:
        self.by_key: dict[str, list[ModelFacts]] = defaultdict(list)
        self.by_id: dict[str, ModelFacts] = {}
        for m in models:
            self.by_id[m.id] = m
            name = m.id.split("/")[-1]
            if split_name_suffix(name) is None:
                self.by_key[_name_key(name)].append(m)

    def lookup(self, model: ModelFacts) -> tuple[ModelFacts, str, str] | None:
        """(parent, relation, evidence kind) for a model whose name has an export suffix, else None."""
        owner, _, name = model.id.rpartition("/")
        split = split_name_suffix(name)
        if split is None:
            return None
        stem, relation = split
        candidates = [c for c in self.by_key.get(_name_key(stem), []) if c.id != model.id]
        if not candidates:
            return None
        same = [c for c in candidates if c.id.rpartition("/")[0] == owner]
        pool, kind = (same, "name_same_owner") if same else (candidates, "name_other_owner")
        older = [c for c in pool if time_state(model, c) != "contradicts"] or pool
        best = max(older, key=lambda c: (c.downloads or 0, -(c.created_at or datetime.max).timestamp()))
        return best, relation, kind


# Folder names that say nothing about the model: training outputs and Hub cache internals.
_GENERIC_FOLDER = re.compile(
    r"^(?:(?:checkpoint|ckpt|step|epoch)[-_]?\d+|final|best|last|latest|output|outputs|out|model|models|"
    r"merged|base|base_model|snapshots|hub|huggingface|cache|\.cache|[0-9a-f]{40})$",
    re.IGNORECASE,
)
_HF_CACHE_FOLDER = re.compile(r"^models--(?P<owner>[\w.\-]+?)--(?P<name>[\w.\-]+)$")


def local_path_parent(
    model: ModelFacts, path: str, index: NameIndex, stored: Mapping[str, str]
) -> tuple[str, str, str] | None:
    """(parent, 'adapter', evidence kind) for an adapter whose base is a local folder: a Hub cache folder
    (`models--org--name`) names its repo; otherwise the last meaningful folder name that a stored model
    bears (`/content/Llama-2-7b-hf/checkpoint-500` → a stored `…/Llama-2-7b-hf`)."""
    parts = [p for p in re.split(r"[/\\]+", path.strip()) if p]
    for part in parts:
        m = _HF_CACHE_FOLDER.match(part)
        if m:
            repo = f"{m['owner']}/{m['name']}"
            return stored.get(repo.lower(), repo), "adapter", "local_hf_cache"
    name = next((p for p in reversed(parts) if not _GENERIC_FOLDER.match(p)), None)
    if name is None or split_name_suffix(name) is not None:
        return None
    candidates = [c for c in index.by_key.get(_name_key(name), []) if c.id != model.id]
    older = [c for c in candidates if time_state(model, c) != "contradicts"] or candidates
    if not older:
        return None
    best = max(older, key=lambda c: (c.downloads or 0, -(c.created_at or datetime.max).timestamp()))
    return best.id, "adapter", "local_folder_name"


def stored_id_resolver(ids: Iterable[str]) -> dict[str, str]:
    """Lower-cased id → the id as stored, so a parent named in other case or by its renamed or legacy id
    (`google-bert/bert-base-uncased` for a stored `bert-base-uncased`, or the reverse) links to the model."""
    out: dict[str, str] = {}
    ids = list(ids)
    for i in ids:
        if "/" not in i and i in LEGACY_IDS:
            out.setdefault(LEGACY_IDS[i].lower(), i)
    for i in ids:
        out[i.lower()] = i
    return out


def _suffix_parent(index: NameIndex, model: ModelFacts) -> tuple[str, str, str] | None:
    hit = index.lookup(model)
    return None if hit is None else (hit[0].id, hit[1], hit[2])


def _link_stored(
    child: str, found: list[tuple[str, str, str]], stored: Mapping[str, str]
) -> list[tuple[str, str, str]]:
    """Parents renamed to their stored ids; a parent named twice (or the child itself) dropped."""
    out: dict[str, tuple[str, str, str]] = {}
    for parent, relation, kind in found:
        parent = stored.get(parent.lower(), parent)
        if parent != child and parent not in out:
            out[parent] = (parent, relation, kind)
    return list(out.values())


def infer_metadata_edges(
    models: Sequence[ModelFacts],
    *,
    skip_children: frozenset[str] | set[str] = frozenset(),
    known: Mapping[str, ModelFacts] | None = None,
    confidence: Mapping[str, float] = CONFIDENCE,
) -> list[EdgeRecord]:
    """Inferred edges for each model not in `skip_children` (those already declaring a parent).

    Card text wins over the name; the confidence of an edge is its kind's calibrated precision times the
    upload-time factor. `known` widens the models a name can point to (default: `models`); a parent that
    is stored under another spelling (case, legacy id) is linked to the stored id.
    """
    index = NameIndex(known.values() if known is not None else models)
    by_id = dict(known) if known is not None else {m.id: m for m in models}
    stored = stored_id_resolver(by_id)
    edges: list[EdgeRecord] = []
    for m in models:
        if m.id in skip_children:
            continue
        found = card_text_parents(m.id, m.text)
        origin = "card_text"
        if not found:
            local = (local_path_parent(m, p, index, stored) for p in m.local_base_paths)
            hit = next((h for h in local if h is not None), None) or _suffix_parent(index, m)
            if hit is not None:
                found, origin = [hit], "name"
        found = _link_stored(m.id, found, stored)
        n = len(found)
        for parent, relation, kind in found:
            ts = time_state(m, by_id.get(parent))
            conf = confidence.get(kind, 0.5) * TIME_FACTOR[ts]
            edges.append(
                EdgeRecord(
                    child=m.id,
                    parent=parent,
                    relation=relation,
                    origin=origin,
                    confidence=round(conf, 3),
                    merge_weight=(1.0 / n) if relation == "merge" and n > 1 else None,
                    evidence=f"{kind}; time {ts}",
                )
            )
    return edges
