"""Quota arithmetic: limits, buckets, group names, and exact counts over random groups."""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import pytest
from pydantic import ValidationError

from assay.select.quota import Limit, Quota, apply_quotas, group_key, unit_rank
from assay.select.select import split_rules


@pytest.mark.parametrize(("limit", "n", "keep"), [
    (Limit(max=3), 10, 3), (Limit(max=30), 10, 10), (Limit(max=0), 10, 0),
    (Limit(fraction=0.5), 7, 3), (Limit(fraction=0.3), 10, 3), (Limit(fraction=1.0), 9, 9),
    (Limit(fraction=0.5, max=2), 10, 2), (Limit(fraction=0.1, max=5), 30, 3), (Limit(), 4, 4),
])
def test_limit_keeps_at_most(limit: Limit, n: int, keep: int) -> None:
    assert limit.keep(n) == keep


def test_buckets_and_their_default_names() -> None:
    q = Quota(by="labels.difficulty", edges=[0.3, 0.7], max=1)
    assert q.bucket_names() == ["<0.3", "0.3-0.7", ">=0.7"]
    keys = [q.key({"labels": {"difficulty": d}}) for d in (0.0, 0.29, 0.3, 0.69, 0.7, 1.0)]
    assert keys == ["<0.3", "<0.3", "0.3-0.7", "0.3-0.7", ">=0.7", ">=0.7"]
    assert q.key({"labels": {}}) == "null"
    assert q.key({"labels": {"difficulty": "hard"}}) == "null"
    named = Quota(by="labels.difficulty", edges=[0.5], names=["easy", "hard"], max=1)
    assert named.key({"labels": {"difficulty": 0.5}}) == "hard"


def test_group_keys_and_shorthand_limits() -> None:
    assert [group_key(v) for v in (None, True, 3, 3.0, 2.5, "x", ["a"])] == ["null", "true", "3", "3", "2.5", "x",
                                                                               '["a"]']
    q = Quota(by="labels.quality", groups={5: 10, True: 0.5, "easy": {"max": 1, "fraction": 0.2}})
    assert q.limit("5") == Limit(max=10)
    assert q.limit("true") == Limit(fraction=0.5)
    assert q.limit("easy") == Limit(max=1, fraction=0.2)
    assert q.limit("other") == Limit()  # no default: unlimited


@pytest.mark.parametrize("bad", [
    {"by": "labels.category"},
    {"by": "labels.category", "max": -1},
    {"by": "labels.category", "fraction": 1.5},
    {"by": "labels.category", "names": ["a"], "max": 1},
    {"by": "labels.x", "edges": [1, 1], "max": 1},
    {"by": "labels.x ==", "max": 1},
    {"by": "labels.x", "groups": {"a": True}},
    {"by": "labels.x", "max": 1, "bogus": 2},
])
def test_invalid_quotas_are_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        Quota(**bad)


def test_apply_quotas_exact_counts_over_random_groups() -> None:
    rng = random.Random(5)
    quota_a = Quota(by="a", max=7, groups={"g0": {"fraction": 0.25}, "g1": 0})
    quota_b = Quota(by="b", fraction=0.6)
    cands = []
    for i in range(2000):
        a, b = f"g{rng.randrange(5)}", f"h{rng.randrange(3)}"
        cands.append(((unit_rank(1, str(i)),), (0, i), [a, b]))
    dropped, summary = apply_quotas([quota_a, quota_b], cands)
    alive = [c for c in cands if c[1] not in dropped]
    sizes_a = Counter(c[2][0] for c in cands)
    after_a = {g: (math.floor(n * 0.25) if g == "g0" else 0 if g == "g1" else min(n, 7)) for g, n in sizes_a.items()}
    assert {g: v["kept"] for g, v in summary[0].items()} == after_a
    assert {g: v["in"] for g, v in summary[0].items()} == dict(sizes_a)
    assert sum(v["in"] for v in summary[1].values()) == sum(after_a.values())
    assert Counter(c[2][1] for c in alive) == {g: v["kept"] for g, v in summary[1].items() if v["kept"]}
    assert all(v["kept"] == math.floor(v["in"] * 0.6) for v in summary[1].values())
    # the best-ranked members of each group survive
    g2 = sorted((c for c in cands if c[2][0] == "g2"), key=lambda c: c[0])
    assert all(dropped.get(c[1], ("kept",))[0] != "quota a" for c in g2[:7])
    assert all(dropped[c[1]][0] == "quota a" for c in g2[7:])


def test_rank_is_fixed_by_seed_and_key() -> None:
    assert unit_rank(0, "a") == unit_rank(0, "a")
    assert unit_rank(0, "a") != unit_rank(1, "a")
    assert unit_rank(0, "a") != unit_rank(0, "b")


def test_split_rules() -> None:
    assert split_rules('labels.x >= 1, domain in ["a", "b"]') == ["labels.x >= 1", 'domain in ["a", "b"]']
    assert split_rules('domain in ["a", "b"]') == ['domain in ["a", "b"]']
    assert split_rules("labels.x >=") == ["labels.x >="]


def test_the_decide_state_is_per_group_bounds_and_gives_the_exact_selection(tmp_path: Any) -> None:
    """20,000 records, most dropped by two quotas: the state sent to every decide task holds a bound
    per group (a few KB), and deciding each record against it drops exactly what sorting every
    candidate (apply_quotas) drops, with the same reasons."""
    import pickle

    from assay.stage import StageContext, build_stage

    stage = build_stage("select", {"rules": ["labels.ok"], "prefer": "labels.score",
                                   "quotas": [{"by": "labels.topic", "max": 40},
                                              {"by": "labels.level", "fraction": 0.5, "groups": {"l0": 0}}]})
    stage.setup(StageContext(cache_dir=tmp_path, seed=9))
    rng = random.Random(3)
    rows = [{"id": f"r{i}", "domain": "math", "prompt": "p",
             "labels": {"ok": i % 7 != 0, "topic": f"t{rng.randrange(12)}", "level": f"l{rng.randrange(4)}",
                        "score": rng.randrange(5)}} for i in range(20_000)]
    shards = [rows[s:s + 2500] for s in range(0, len(rows), 2500)]
    partials = [stage.index_shard(stage.positioned(k, iter(sh))) for k, sh in enumerate(shards)]
    state = stage.merge(partials)
    assert len(pickle.dumps(state)) < 8000
    want, _ = apply_quotas(stage.quotas, [c for p in partials for c in p.candidates])
    got: dict[Any, str] = {}
    for k, sh in enumerate(shards):
        stage.decide_batch(sh, state, (k, 0))
        for j, rec in enumerate(sh):
            check = rec["checks"]["select"]
            if not check["passed"]:
                got[(k, j)] = check["reason"]
    rule_drops = {(k, j) for k, sh in enumerate(shards) for j, r in enumerate(sh) if not r["labels"]["ok"]}
    assert {pos: why for pos, why in got.items() if pos not in rule_drops} == {pos: r[1] for pos, r in want.items()}
    assert all(got[pos] == "rule failed: labels.ok" for pos in rule_drops)
    assert len(want) > 15_000  # most records fell to a quota
