"""Stage `select-responses`: keep the passing responses of each record (all, or k by a policy)
and write the empirical pass rate, passing / sampled, as a difficulty signal.

"Sampled" is how many responses the teacher wrote for the record, before any rejection. The
runner removes failing responses as each stage decides, so by this stage a record only carries
the survivors; the count of what was sampled comes from `meta.sampled`, which the `distill`
stage sets when it samples and the `rules` stage sets when absent (`record_sampled`), so it is
right whenever either ran before any response was dropped. Without it, the sample is the
responses present plus those earlier stages rejected (`meta.responses_rejected`, counted by
the runner's decision).
"""

from __future__ import annotations

import hashlib
import random
from typing import Literal

from pydantic import Field

from assay.record import Record, Response, Verdict, checks_of
from assay.stage import ResponseCheck, stage


def _passing(resp: Response, require: list[str] | None, skip: str, ignore: frozenset[str] = frozenset()
             ) -> tuple[bool, str]:
    """(passes, the first failing check) over the checks a response carries."""
    checks = resp.get("checks") or {}
    keys = require if require is not None else [k for k in checks if k != skip and k not in ignore]
    for k in keys:
        c = checks.get(k)
        if not isinstance(c, dict):
            if require is not None:
                return False, f"{k} missing"
            continue
        if not c.get("passed"):
            return False, k
    return True, ""


def response_text(resp: Response) -> str:
    reasoning = resp.get("reasoning") or ""
    text = resp.get("text") or ""
    return text if not reasoning or reasoning in text else reasoning + "\n" + text


def _shingles(text: str, n: int) -> list[str]:
    words = text.split()
    if len(words) <= n:
        return [" ".join(words)]
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def jaccard_matrix(texts: list[str], shingle: int = 5, num_perm: int = 128) -> list[list[float]]:
    """Pairwise estimated Jaccard similarity of word shingles (MinHash with rensa when installed,
    exact sets otherwise)."""
    sets = [_shingles(t, shingle) for t in texts]
    try:
        from rensa import RMinHash
    except ImportError:
        exact = [set(s) for s in sets]
        return [[len(a & b) / (len(a | b) or 1) for b in exact] for a in exact]
    hashes = []
    for s in sets:
        m = RMinHash(num_perm=num_perm, seed=42)
        m.update(s)
        hashes.append(m)
    return [[1.0 if i == j else a.jaccard(b) for j, b in enumerate(hashes)] for i, a in enumerate(hashes)]


@stage("select-responses")
class SelectResponses(ResponseCheck):
    """Keeps every passing response of a record, or at most `k` of them chosen by `policy`
    (highest reward score, shortest, most diverse by MinHash distance, first, random), and
    writes labels.pass_rate = passing / sampled (see meta.sampled) as a difficulty signal."""

    version = "1"

    k: int | None = Field(None, ge=1, description="keep at most this many responses per record (default: all passing)")
    policy: Literal["reward", "shortest", "diverse", "first", "random"] = Field(
        "reward", description="how to choose k: highest checks.<score_key>.score, shortest text, most diverse "
                              "(greedy max-min MinHash distance), first in order, or random (seeded)")
    score_key: str = Field("reward", description="the check whose score ranks responses for policy 'reward'")
    require: list[str] | None = Field(None, description="the checks a response must pass to count as passing "
                                      "(default: every check it carries)")
    ignore: list[str] = Field(default_factory=list, description="checks that do not count for passing (e.g. "
                              "judge or reward run with drop: false, only to rank)")
    shingle: int = Field(5, ge=1, description="word n-gram size for the diversity policy")
    pass_rate_label: str = Field("pass_rate", description="the label the pass rate is written to")

    def _score(self, resp: Response) -> float:
        check = (resp.get("checks") or {}).get(self.score_key)
        score = check.get("score") if isinstance(check, dict) else None
        return float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else float("-inf")

    def choose(self, rec: Record, candidates: list[int], responses: list[Response]) -> list[int]:
        """Indices (into responses) of the k responses to keep, best first."""
        k = self.k
        if k is None or len(candidates) <= k:
            return candidates
        if self.policy == "first":
            return candidates[:k]
        if self.policy == "random":
            seed = int(hashlib.sha256(f"{self.ctx.seed}:{rec.get('id')}".encode()).hexdigest()[:16], 16)
            return sorted(random.Random(seed).sample(candidates, k))
        if self.policy == "shortest":
            return sorted(candidates, key=lambda i: (len(response_text(responses[i])), i))[:k]
        by_reward = sorted(candidates, key=lambda i: (-self._score(responses[i]), i))
        if self.policy == "reward":
            return by_reward[:k]
        # diverse: start from the best-scored (the first when unscored), then add the response
        # farthest (in Jaccard distance) from everything chosen so far
        sims = jaccard_matrix([response_text(responses[i]) for i in candidates], self.shingle)
        pos = {i: p for p, i in enumerate(candidates)}
        chosen = [by_reward[0]]
        while len(chosen) < k:
            rest = [i for i in candidates if i not in chosen]
            best = max(rest, key=lambda i: (min(1 - sims[pos[i]][pos[c]] for c in chosen), -pos[i]))
            chosen.append(best)
        return chosen

    def process_batch(self, records: list[Record]) -> None:
        for rec in records:
            responses = rec.get("responses") or []
            ignore = frozenset(self.ignore)
            status = [_passing(r, self.require, self.key, ignore) for r in responses]
            candidates = [i for i, (ok, _) in enumerate(status) if ok]
            chosen = self.choose(rec, candidates, responses)
            keep = set(chosen)
            rank = {i: r for r, i in enumerate(chosen)}
            meta = rec.get("meta") if isinstance(rec.get("meta"), dict) else {}
            sampled = meta.get("sampled")
            if not isinstance(sampled, int) or isinstance(sampled, bool) or sampled < len(responses):
                # what is here plus what earlier stages rejected (the runner counts those)
                sampled = len(responses) + int(meta.get("responses_rejected") or 0)
            if sampled:
                labels = rec.get("labels") if isinstance(rec.get("labels"), dict) else {}
                labels[self.pass_rate_label] = round(len(candidates) / sampled, 4)
                rec["labels"] = labels
                rec["meta"] = {**meta, "sampled": sampled, "passing": len(candidates)}
            for i, resp in enumerate(responses):
                ok, failed = status[i]
                if not ok:
                    verdict = Verdict(False, 0.0, f"did not pass {failed}", "not_passing")
                elif i in keep:
                    why = f"kept ({rank[i] + 1} of {len(candidates)} by {self.policy})" if self.k else "kept (passing)"
                    verdict = Verdict(True, 1.0, why)
                else:
                    verdict = Verdict(False, 0.0, f"not among the {self.k} chosen by {self.policy} "
                                      f"({len(candidates)} passing)", "not_selected")
                checks_of(resp)[self.key] = verdict.to_dict()
