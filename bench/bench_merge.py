"""Benchmark the merge advisor on bench zoos; writes bench/results/merge.json.

For each zoo seed: build the atlas (scan, sample, kinship: declared lineage only), take every expert
(a fine-tune in the zoo's ground truth) as a query, ask the advisor for all its candidates, and really
merge the query with each candidate (in-project implementations of the mergekit methods, onto the merge
base the advisor names), with every method. Then compare the advice with the measured merge gain:

    gain(q, c) = mean over T of acc(merge(q, c), t) − mean over T of acc(q, t),
    T = the tasks the query and the candidate were trained on (zoo ground truth; a merge's tasks are its
        parents', a base's all five)

i.e. what the query's owner gains on the two experts' tasks by merging. The gain of a suggestion is that
of the method the advisor chose. Figures: Spearman(score, gain) over all pairs of a seed and the mean of the
per-query Spearman; the share of queries whose top-1 gains more than the median candidate; the same for
"kinship alone" (nearest kin first, Pearson of task vectors) and random rankings, in the same run.
Weights and method rules were tuned on `--tune-seeds` (`--tune` stores the grid search) and are validated
on the other seeds; `--seen-seeds` names validation seeds already looked at while an earlier score was
tuned, reported apart from the fresh ones. Also: suggest latency on a 1,000-sampled-model database, evolve
curves, mergekit checks.

Run: `python bench/bench_merge.py [--seeds 1 2 3 4 5 6 7 8] [--tune-seeds 1 4] [--seen-seeds 2 3 5 6] [--tune]`
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from analysis.evolve import EvolveConfig, evolve, zoo_family_pool  # noqa: E402
from analysis.merge import (  # noqa: E402
    EVAL_SIGNALS,
    METHOD_RULES,
    SCORE_WEIGHTS,
    MethodRule,
    choose_method,
    kinship_values,
    rank_pool,
    score_of,
)
from analysis.merge_candidates import MergeAdviceError, find_candidates  # noqa: E402
from analysis.merge_methods import MERGE_METHODS, apply_method  # noqa: E402
from analysis.zoo import TASKS, build_zoo, load_state  # noqa: E402
from analysis.zoo_tasks import accuracy  # noqa: E402
from atlas.db import connect  # noqa: E402

ZOO_CACHE = Path(os.environ.get("HUBATLAS_BENCH_ZOO_CACHE", Path.home() / ".cache" / "hubatlas-bench-zoo"))
GAIN_DEFINITION = (
    "gain = mean over T of acc(merge(query, candidate), t) - mean over T of acc(query, t); T = the tasks the "
    "query and the candidate were trained on (zoo ground truth; merges: their parents' tasks; bases: all); "
    "acc = held-out token accuracy (analysis.zoo.accuracy); the merge uses the method the advisor chose, "
    "onto the merge base it named"
)


# Earlier scores, evaluated on every seed of the same run for comparison: before `predicted_gain` (tuned on
# seeds 1 and 4), and before `retention` (tuned on seed 1 alone).
PREVIOUS_WEIGHTS = {"best_lift": 1.0, "retention": 0.2, "complementarity": 0.01, "licence_conflict": -1.0}
FIRST_WEIGHTS = {"best_lift": 1.0, "complementarity": 0.01, "licence_conflict": -1.0}


def ensure_zoo(seed: int) -> Path:
    """The bench zoo of `seed`, built once into ZOO_CACHE/<seed>/zoo (shared with the other benchmarks)."""
    final = ZOO_CACHE / str(seed) / "zoo"
    if (final / "lineage.json").is_file():
        return final
    staging = ZOO_CACHE / f".merge-build-{seed}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    build_zoo(staging, seed=seed, size="bench")
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staging, final)
    except OSError:  # another process finished the same zoo first: identical bytes, use it
        shutil.rmtree(staging, ignore_errors=True)
    return final


def build_atlas(zoo: Path, db: Path) -> None:
    """scan + sample + kinship, as a user would run them (declared lineage only: no inference)."""
    for args in (["scan", str(zoo)], ["sample", "--all", "--workers", "2"], ["kinship", "--device", "cpu"]):
        subprocess.run([sys.executable, "-m", "atlas", *args, "--db", str(db), "-q"], check=True, cwd=REPO,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


@dataclass
class Pair:
    query: str
    partner: str
    base: str
    signals: dict[str, float | None]
    kinship: dict[str, float | None]
    has_reference: bool
    gains: dict[str, float]  # method -> measured gain
    gain_vs_better_parent: dict[str, float]


@dataclass
class SeedTable:
    seed: int
    pairs: list[Pair] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # query -> why the advisor refused it
    seconds: float = 0.0


def _tasks(by_id: dict[str, dict], m: str) -> set[str]:
    e = by_id[m]
    if e["tasks"]:
        return set(e["tasks"])
    return set().union(*(_tasks(by_id, p) for p in e["parents"])) if e["parents"] else set(TASKS)


def measure_seed(seed: int, zoo: Path, db: Path, *, use_cache: bool = True) -> SeedTable:
    """Every (expert, candidate) pair the advisor considers, with its signals and measured gains. The merged
    accuracies are kept beside the zoo (they depend only on the zoo's checkpoints), so a changed score or
    signal is re-evaluated without merging again."""
    t0 = time.perf_counter()
    truth = {m["id"]: m for m in json.loads((zoo / "lineage.json").read_text())["models"]}
    states: dict[str, dict] = {}

    def state(m: str) -> dict:
        if m not in states:
            states[m] = load_state(zoo / truth[m]["path"])
        return states[m]

    # merged accuracies by (query, partner, base), the slow part, valid for this zoo's lineage.json only
    cache_file = zoo.parent / "merge_gains.json"
    fingerprint = hashlib.sha256((zoo / "lineage.json").read_bytes()).hexdigest()
    stored = json.loads(cache_file.read_text()) if use_cache and cache_file.is_file() else {}
    cache = stored.get("accuracies", {}) if stored.get("zoo") == fingerprint else {}
    con = connect(db, read_only=True)
    table = SeedTable(seed)
    for q in sorted(m for m, e in truth.items() if e["kind"] == "finetune"):
        try:
            pool = find_candidates(con, q)
        except MergeAdviceError as e:
            table.skipped[q] = str(e)
            continue
        for s in rank_pool(pool, k=None):
            facts = next(p for p in pool.pairs if p.partner.id == s.partner)
            tasks = sorted(_tasks(truth, q) | _tasks(truth, s.partner))
            own = statistics.mean(truth[q]["scores"][t] for t in tasks)
            better = statistics.mean(max(truth[q]["scores"][t], truth[s.partner]["scores"][t]) for t in tasks)
            key = "\t".join((q, s.partner, s.base))
            if key not in cache:
                accs = {}
                for name in MERGE_METHODS:
                    merged = apply_method(name, state(s.base), [state(q), state(s.partner)])
                    accs[name] = statistics.mean(accuracy(merged, t) for t in tasks)
                cache[key] = accs
            gains = {name: round(acc - own, 5) for name, acc in cache[key].items()}
            vs_better = {name: round(acc - better, 5) for name, acc in cache[key].items()}
            table.pairs.append(Pair(q, s.partner, s.base, s.signals, kinship_values(facts), facts.reference is not None,
                                    gains, vs_better))  # fmt: skip
    con.close()
    if use_cache:
        cache_file.write_text(json.dumps({"zoo": fingerprint, "accuracies": cache}))
    table.seconds = round(time.perf_counter() - t0, 1)
    return table


def _rho(x: list[float], y: list[float]) -> float | None:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


def evaluate_ranking(table: SeedTable, score: Callable[[Pair], float], method: Callable[[Pair], str]) -> dict:
    """Spearman and top-1-vs-median of a ranking (score(pair) -> float) whose merges use method(pair)."""
    by_q: dict[str, list[tuple[float, float]]] = {}
    for p in table.pairs:
        by_q.setdefault(p.query, []).append((score(p), p.gains[method(p)]))
    scores = [s for rows in by_q.values() for s, _ in rows]
    gains = [g for rows in by_q.values() for _, g in rows]
    per_q = [
        r for rows in by_q.values() if (r := _rho([s for s, _ in rows], [g for _, g in rows])) is not None
    ]
    wins, top_gain = [], []
    for rows in by_q.values():
        if len(rows) < 2:
            continue
        top = max(rows, key=lambda sg: sg[0])[1]  # ties: the first listed (partner id order)
        wins.append(top > statistics.median(g for _, g in rows))
        top_gain.append(top)
    return {
        "spearman_pooled": round(_rho(scores, gains) or 0.0, 4),
        "spearman_per_query_mean": round(statistics.mean(per_q), 4) if per_q else None,
        "top1_beats_median": round(sum(wins) / len(wins), 4) if wins else None,
        "top1_mean_gain": round(statistics.mean(top_gain), 4) if top_gain else None,
        "queries": len(wins),
    }


def _auto(rules: tuple[MethodRule, ...] = METHOD_RULES) -> Callable[[Pair], str]:
    return lambda p: choose_method(p.kinship, has_reference=p.has_reference, rules=rules)[0]


def evaluate_seed(table: SeedTable, *, weights: dict[str, float] | None = None,
                  rules: tuple[MethodRule, ...] = METHOD_RULES, n_random: int = 200) -> dict:  # fmt: skip
    """The advisor and both baselines on one seed's table."""
    auto = _auto(rules)
    advisor = evaluate_ranking(table, lambda p: score_of(p.signals, weights), auto)
    previous = evaluate_ranking(table, lambda p: score_of(p.signals, PREVIOUS_WEIGHTS), auto)
    first = evaluate_ranking(table, lambda p: score_of(p.signals, FIRST_WEIGHTS), auto)
    kin = evaluate_ranking(table, lambda p: p.signals.get("kinship") or 0.0, auto)
    # what the advice does for models whose cards report no evaluations: only the kinship signals are known
    no_evals = evaluate_ranking(
        table, lambda p: score_of({**p.signals, **dict.fromkeys(EVAL_SIGNALS)}, weights), auto
    )
    rng = random.Random(table.seed)
    runs = []
    for _ in range(n_random):
        noise = {(p.query, p.partner): rng.random() for p in table.pairs}
        runs.append(evaluate_ranking(table, lambda p, n=noise: n[(p.query, p.partner)], auto))
    rand = {k: round(statistics.mean(r[k] for r in runs if r[k] is not None), 4)
            for k in ("spearman_pooled", "spearman_per_query_mean", "top1_beats_median", "top1_mean_gain")}  # fmt: skip
    rand["permutations"] = n_random
    methods = {m: round(statistics.mean(p.gains[m] for p in table.pairs), 4) for m in MERGE_METHODS}
    chosen = [auto(p) for p in table.pairs]
    best = [max(p.gains, key=lambda m, p=p: p.gains[m]) for p in table.pairs]
    return {
        "queries": len({p.query for p in table.pairs}), "pairs": len(table.pairs),
        "skipped_queries": len(table.skipped), "advisor": advisor, "advisor_previous_score": previous, "advisor_first_score": first, "kinship_alone": kin, "random": rand, "advisor_without_evals": no_evals,
        "methods": {"mean_gain_fixed": methods,
                    "mean_gain_auto": round(statistics.mean(p.gains[m] for p, m in zip(table.pairs, chosen, strict=True)), 4),
                    "mean_gain_best_method": round(statistics.mean(max(p.gains.values()) for p in table.pairs), 4),
                    "auto_counts": {m: chosen.count(m) for m in MERGE_METHODS if chosen.count(m)},
                    "auto_is_best_share": round(sum(c == b for c, b in zip(chosen, best, strict=True)) / len(chosen), 4),
                    "mean_gain_vs_better_parent_auto": round(statistics.mean(
                        p.gain_vs_better_parent[m] for p, m in zip(table.pairs, chosen, strict=True)), 4)},
        "measure_seconds": table.seconds,
    }  # fmt: skip


def tune(tables: list[SeedTable]) -> dict:
    """Grid search of the score weights (on every tuning seed: the worst top-1 rate, then the mean per-query
    Spearman) and of the TIES threshold (mean gain of the chosen method, all tuning pairs)."""
    grid = {"best_lift": (0.0, 0.5, 1.0, 2.0), "mean_lift": (0.0, 0.5, 1.0), "retention": (0.0, 0.1, 0.2, 0.3, 0.5),
            "complementarity": (0.0, 0.01, 0.1, 1.0), "sign_agreement": (0.0, 0.01, 0.1),
            "predicted_gain": (0.0, 0.5, 1.0, 2.0)}  # fmt: skip
    results = []
    for values in itertools.product(*grid.values()):
        w = dict(zip(grid, values, strict=True))
        if not any(values):
            continue
        rs = [evaluate_ranking(t, lambda p, w=w: score_of(p.signals, w), _auto()) for t in tables]
        top1 = min(r["top1_beats_median"] or 0 for r in rs)
        per_q = statistics.mean(r["spearman_per_query_mean"] or -1 for r in rs)
        results.append((top1, per_q, w, rs))
    results.sort(key=lambda x: (-x[0], -x[1]))
    pairs = [p for t in tables for p in t.pairs]
    rules = []
    for th in (0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 1.01):
        for low in ("slerp", "linear", "task_arithmetic", "dare_ties"):
            rs = (
                MethodRule("ties", "sign_conflict", ">=", th, ""),
                MethodRule(low, "sign_conflict", ">=", 0.0, ""),
            )
            auto = _auto(rs)
            rules.append({"ties_at": th, "else": low,
                          "mean_gain": round(statistics.mean(p.gains[auto(p)] for p in pairs), 4)})  # fmt: skip
    rules.sort(key=lambda r: -r["mean_gain"])
    seeds = [t.seed for t in tables]
    chosen = {
        s: evaluate_ranking(t, lambda p: score_of(p.signals), _auto())
        for s, t in zip(seeds, tables, strict=True)
    }
    before = {s: evaluate_ranking(t, lambda p: score_of(p.signals, PREVIOUS_WEIGHTS), _auto())
              for s, t in zip(seeds, tables, strict=True)}  # fmt: skip
    return {"seeds": seeds,
            "objective": "worst top-1 rate over the tuning seeds, then their mean per-query Spearman; "
                         "TIES threshold: mean gain of the chosen method",
            "best_weights": [{"top1_worst": a, "per_query_mean": round(b, 4), "weights": w,
                              "per_seed": dict(zip(seeds, rs, strict=True))} for a, b, w, rs in results[:10]],
            "code_weights": {"weights": SCORE_WEIGHTS, "per_seed": chosen},
            "previous_weights": {"weights": PREVIOUS_WEIGHTS, "per_seed": before},
            "method_rules": rules[:10]}  # fmt: skip


def bench_latency(source_db: Path, *, copies: int = 4, seed: int = 0) -> dict:
    """suggest() on a database of about 1,000 sampled models: `copies` replicas of a bench atlas, renamed,
    with kinship rows between replicas (raw-weight pairs) as a real all-pairs run of one architecture stores."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "big.duckdb"
        con = connect(db)
        con.execute("ATTACH ? AS src (READ_ONLY)", [str(source_db)])
        for i in range(copies):
            p = f"r{i}-"
            con.execute(f"INSERT INTO models BY NAME SELECT * REPLACE ('{p}' || id AS id) FROM src.models")
            con.execute(
                f"INSERT INTO tensors BY NAME SELECT * REPLACE ('{p}' || model_id AS model_id) FROM src.tensors"
            )
            con.execute(
                f"INSERT INTO weight_samples BY NAME SELECT * REPLACE ('{p}' || model_id AS model_id) FROM src.weight_samples"
            )
            con.execute(
                f"INSERT INTO evals BY NAME SELECT * REPLACE ('{p}' || model_id AS model_id) FROM src.evals"
            )
            con.execute(
                f"INSERT INTO edges BY NAME SELECT * REPLACE ('{p}' || child AS child, '{p}' || parent AS parent) FROM src.edges"
            )
            con.execute(
                f"INSERT INTO kinship BY NAME SELECT * REPLACE ('{p}' || a AS a, '{p}' || b AS b, '{p}' || reference AS reference) FROM src.kinship"
            )
        # pairs across replicas: same shapes, no common ancestor, raw-weight kinship (reference NULL)
        con.execute(
            """
            INSERT INTO kinship (a, b, reference, scheme, pearson, cosine, l2, sign_conflict, topk_overlap, computed_on)
            WITH s AS (SELECT w.model_id AS id, md5(string_agg(t.name || CAST(t.shape AS VARCHAR), ',' ORDER BY t.name)) AS sig
                       FROM weight_samples w JOIN tensors t USING (model_id) GROUP BY w.model_id)
            SELECT x.id, y.id, NULL, 'default', 0.9, 0.9, 1.0, 0.1, 0.5, 'cpu' FROM s x JOIN s y
            ON x.sig = y.sig AND x.id < y.id AND split_part(x.id, '-', 1) <> split_part(y.id, '-', 1)
            """
        )  # fmt: skip
        con.execute("DETACH src")
        from atlas.store import refresh_lineage

        refresh_lineage(con)
        n_sampled = con.execute("SELECT count(*) FROM weight_samples WHERE status = 'ok'").fetchone()[0]
        n_kin = con.execute("SELECT count(*) FROM kinship").fetchone()[0]
        experts = [r[0] for r in con.execute(
            "SELECT child FROM lineage WHERE relation = 'finetune' AND child LIKE 'r0-%' ORDER BY child").fetchall()]  # fmt: skip
        rng = random.Random(seed)
        queries = rng.sample(experts, 10)
        from analysis.merge import suggest

        times = []
        for q in queries:
            t = time.perf_counter()
            suggest(con, q, k=5)
            times.append(time.perf_counter() - t)
        con.close()
        cli = []
        for q in queries[:3]:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "atlas", "suggest", q, "--db", str(db), "-k", "5"], check=True,
                           cwd=REPO, stdout=subprocess.DEVNULL)  # fmt: skip
            cli.append(time.perf_counter() - t)
    return {"sampled_models": n_sampled, "kinship_rows": n_kin, "queries": len(times),
            "suggest_seconds_median": round(statistics.median(times), 4), "suggest_seconds_max": round(max(times), 4),
            "cli_seconds_median": round(statistics.median(cli), 3),
            "definition": "suggest() end to end (candidates, signals, score, YAML, write to merge_suggestions) "
                          "on an open connection; cli = `python -m atlas suggest ID` including interpreter start",
            "target_seconds": 1.0}  # fmt: skip


def bench_evolve(db: Path, *, rounds: int, k: int) -> dict:
    """Top-k greedy merging with and without kinship exploration on every zoo family of the atlas."""
    con = connect(db, read_only=True)
    roots = [r[0] for r in con.execute(
        "SELECT DISTINCT f.root FROM family_members f JOIN models m ON m.id = f.root "
        "WHERE m.source = 'zoo' AND f.root <> f.id ORDER BY 1").fetchall()]  # fmt: skip
    out = {}
    for root in roots:
        _, base, pool = zoo_family_pool(con, root)
        if len(pool) < 10:  # a model whose parent is undeclared roots a small family of its own
            continue
        out[root] = {"pool": len(pool)}
        for guided in (False, True):
            curve = evolve(base, pool, EvolveConfig(rounds=rounds, k=k, kinship=guided), family=root)
            out[root]["kinship" if guided else "greedy"] = {
                "best": [r.best for r in curve.rounds], "top_mean": [r.top_mean for r in curve.rounds],
                "merges": sum(r.merges for r in curve.rounds), "best_recipe": curve.recipe(curve.rounds[-1].best_model)}  # fmt: skip
    con.close()
    fams = [v for v in out.values() if isinstance(v, dict) and "greedy" in v]
    if fams:
        g = [f["greedy"]["best"][-1] - f["greedy"]["best"][0] for f in fams]
        kk = [f["kinship"]["best"][-1] - f["kinship"]["best"][0] for f in fams]
        out["summary"] = {"families": len(fams), "mean_gain_greedy": round(statistics.mean(g), 4),
                          "mean_gain_kinship": round(statistics.mean(kk), 4),
                          "kinship_better": sum(b > a for a, b in zip(g, kk, strict=True)),
                          "kinship_worse": sum(b < a for a, b in zip(g, kk, strict=True)),
                          "gain": "best fitness after the last round minus the best zoo model's (mean accuracy over the 5 tasks)"}  # fmt: skip
    return out


def bench_mergekit(zoo: Path, table: SeedTable) -> dict:
    """Run mergekit itself on the advisor's YAML for one zoo pair, every method, and compare with our merge."""
    try:
        from mergekit.config import MergeConfiguration
        from mergekit.merge import MergeOptions, run_merge
    except ImportError:
        return {"skipped": "mergekit not installed (pip install -e '.[merge]')"}
    import yaml

    from analysis.merge_candidates import ModelFacts
    from analysis.merge_config import mergekit_yaml

    truth = {m["id"]: m for m in json.loads((zoo / "lineage.json").read_text())["models"]}
    p = max(table.pairs, key=lambda x: x.gains["linear"])  # a pair whose merge matters
    facts = {m: ModelFacts(m, "LlamaForCausalLM", None, str(zoo / truth[m]["path"]), "F32")
             for m in (p.query, p.partner, p.base)}  # fmt: skip
    states = {m: load_state(Path(f.location or "")) for m, f in facts.items()}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, method in MERGE_METHODS.items():
            text = mergekit_yaml(method, [facts[p.query], facts[p.partner]], facts[p.base])
            run_merge(MergeConfiguration.model_validate(yaml.safe_load(text)), str(Path(tmp) / name),
                      MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True))  # fmt: skip
            theirs = load_state(Path(tmp) / name)
            ours = apply_method(name, states[p.base], [states[p.query], states[p.partner]])
            out[name] = {"max_abs_diff": float(max((theirs[k] - ours[k]).abs().max() for k in ours)),
                         "ours_acc": {t: accuracy(ours, t) for t in TASKS},
                         "mergekit_acc": {t: accuracy(theirs, t) for t in TASKS}}  # fmt: skip
    return {"pair": {"model": p.query, "partner": p.partner, "base": p.base}, "methods": out,
            "note": "dare_ties drops entries at random, so only its accuracies are comparable"}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 7, 8])
    ap.add_argument("--tune-seeds", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--seen-seeds", type=int, nargs="*", default=[2, 3, 5, 6],
                    help="Validation seeds looked at while an earlier score was tuned.")  # fmt: skip
    ap.add_argument("--tune", action="store_true", help="Also store the grid search on the tuning seeds.")
    ap.add_argument("--evolve-rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "merge.json")
    ap.add_argument(
        "--no-cache", action="store_true", help="Merge and evaluate again, ignoring stored gains."
    )
    ap.add_argument(
        "--only-seeds", action="store_true", help="Per-seed figures only: no evolve, latency, mergekit."
    )
    args = ap.parse_args()
    torch.set_num_threads(1)  # tiny models: one thread is fastest, and the machine is shared
    t0 = time.perf_counter()
    tuning = [s for s in args.seeds if s in args.tune_seeds]
    validation = [s for s in args.seeds if s not in args.tune_seeds]
    fresh = [s for s in validation if s not in args.seen_seeds]
    out: dict = {"gain_definition": GAIN_DEFINITION, "tuning_seeds": tuning, "validation_seeds": validation,
                 "fresh_validation_seeds": fresh, "score_weights": SCORE_WEIGHTS,
                 "previous_score_weights": PREVIOUS_WEIGHTS, "first_score_weights": FIRST_WEIGHTS,
                 "method_rules": [r.__dict__ for r in METHOD_RULES], "seeds": {}, "evolve": {}}  # fmt: skip
    roles = {"tuning": tuning, "validation (fresh)": fresh}
    with tempfile.TemporaryDirectory() as tmp:
        dbs, tables = {}, {}
        for seed in args.seeds:
            zoo = ensure_zoo(seed)
            db = dbs[seed] = Path(tmp) / f"seed{seed}.duckdb"
            build_atlas(zoo, db)
            table = tables[seed] = measure_seed(seed, zoo, db, use_cache=not args.no_cache)
            res = evaluate_seed(table)
            res["role"] = next((r for r, ss in roles.items() if seed in ss), "validation (seen before)")
            out["seeds"][str(seed)] = res
            print(json.dumps({seed: res}, indent=1), flush=True)
            if args.only_seeds:
                continue
            out["evolve"][str(seed)] = bench_evolve(db, rounds=args.evolve_rounds, k=3)
            if tuning and seed == tuning[0]:
                out["mergekit"] = bench_mergekit(zoo, table)
        if args.tune and tuning:
            out["tuning_grid"] = tune([tables[s] for s in tuning])
        if not args.only_seeds:
            out["latency"] = bench_latency(dbs[tuning[0] if tuning else args.seeds[0]])
    val = [out["seeds"][str(s)] for s in validation]
    out["acceptance"] = {
        "spearman_pooled_ge_0.5_every_validation_seed": all(v["advisor"]["spearman_pooled"] >= 0.5 for v in val),
        "spearman_per_query_ge_0.5_every_validation_seed": all((v["advisor"]["spearman_per_query_mean"] or 0) >= 0.5 for v in val),
        "top1_beats_median_ge_0.8_every_validation_seed": all((v["advisor"]["top1_beats_median"] or 0) >= 0.8 for v in val),
        "top1_beats_median_pooled_over_validation_seeds": round(
            sum(round(v["advisor"]["top1_beats_median"] * v["advisor"]["queries"]) for v in val)
            / sum(v["advisor"]["queries"] for v in val), 4) if val else None,
        "advisor_beats_kinship_alone_and_random": all(
            v["advisor"]["spearman_pooled"] > max(v["kinship_alone"]["spearman_pooled"], v["random"]["spearman_pooled"]) for v in val),
        "suggest_under_1s_on_1000_models": out["latency"]["suggest_seconds_max"] < 1.0 if "latency" in out else None,
        "fresh_seeds": {
            "spearman_pooled_ge_0.5": all(out["seeds"][str(s)]["advisor"]["spearman_pooled"] >= 0.5 for s in fresh),
            "top1_beats_median_ge_0.8": all((out["seeds"][str(s)]["advisor"]["top1_beats_median"] or 0) >= 0.8 for s in fresh),
        },
    }  # fmt: skip
    out["cpu_count"] = os.cpu_count()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    dest = args.out
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out.get(k) for k in ("acceptance", "latency", "seconds")}, indent=2))


if __name__ == "__main__":
    main()
