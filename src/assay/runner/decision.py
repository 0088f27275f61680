"""The decision: after a stage has written its checks, keep or drop, and count why.

Kept apart from the checks so thresholds can be re-tuned without recomputing anything.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from assay.record import Record, prompt_text
from assay.stage import Stage

REASON_KEY_CHARS = 80
NO_RESPONSE_LEFT = "no response passed"


@dataclass
class StageStats:
    records_in: int = 0
    records_out: int = 0
    responses_in: int = 0
    responses_out: int = 0
    skipped: int = 0  # records the stage's `when:` let through untouched
    records_rejected: int = 0
    responses_rejected: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "records_in": self.records_in, "records_out": self.records_out,
            "responses_in": self.responses_in, "responses_out": self.responses_out,
            "skipped": self.skipped, "records_rejected": self.records_rejected,
            "responses_rejected": self.responses_rejected,
            "rejected": dict(sorted(self.rejected.items(), key=lambda kv: (-kv[1], kv[0]))),
            "seconds": round(self.seconds, 4), "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageStats:
        return cls(d["records_in"], d["records_out"], d["responses_in"], d["responses_out"], d["skipped"],
                   d["records_rejected"], d["responses_rejected"], Counter(d["rejected"]), d["seconds"],
                   d.get("metrics") or {})

    def add(self, other: StageStats) -> None:
        self.records_in += other.records_in
        self.records_out += other.records_out
        self.responses_in += other.responses_in
        self.responses_out += other.responses_out
        self.skipped += other.skipped
        self.records_rejected += other.records_rejected
        self.responses_rejected += other.responses_rejected
        self.rejected.update(other.rejected)
        self.seconds += other.seconds
        merge_metrics(self.metrics, other.metrics)


def merge_metrics(into: dict[str, Any], other: dict[str, Any]) -> None:
    """Numbers add up, dicts merge, lists concatenate, anything else: the latest wins."""
    for k, v in other.items():
        cur = into.get(k)
        if isinstance(v, bool) or cur is None:
            into[k] = v
        elif isinstance(v, (int, float)) and isinstance(cur, (int, float)):
            into[k] = cur + v
        elif isinstance(v, dict) and isinstance(cur, dict):
            merge_metrics(cur, v)
        elif isinstance(v, list) and isinstance(cur, list):
            into[k] = cur + v
        else:
            into[k] = v


def passes(check: dict[str, Any], stage: Stage) -> bool:
    score = check.get("score")
    if score is not None and (stage.min_score is not None or stage.max_score is not None):
        try:
            s = float(score)
        except (TypeError, ValueError):
            return bool(check.get("passed"))
        return (stage.min_score is None or s >= stage.min_score) and (stage.max_score is None or s <= stage.max_score)
    return bool(check.get("passed"))


def _failures(obj: dict[str, Any], keys: list[str], stage: Stage) -> list[tuple[str, dict[str, Any]]]:
    checks = obj.get("checks")
    if not checks:
        return []
    return [(k, c) for k in keys if isinstance(c := checks.get(k), dict) and not passes(c, stage)]


def _reason(fails: list[tuple[str, dict[str, Any]]]) -> tuple[str, str]:
    """(full reason for people, short key for counting)."""
    reason = "; ".join(f"{k}: {c.get('reason') or 'failed'}" for k, c in fails)
    k, c = fails[0]
    short = c.get("code") or (c.get("reason") or "failed")
    return reason, f"{k}: {str(short)[:REASON_KEY_CHARS]}"


class Decider:
    """Applies a stage's decision to records and writes what it drops to a rejected sink."""

    def __init__(self, stage: Stage, stats: StageStats, rejected: Any):
        self.stage = stage
        self.keys = stage.check_names()
        self.stats = stats
        self.rejected = rejected  # anything with .write(dict)

    def reject_record(self, rec: Record, reason: str, key: str) -> None:
        self.stats.records_rejected += 1
        self.stats.rejected[key] += 1
        self.rejected.write({"stage": self.stage.label, "kind": "record", "id": rec.get("id"),
                             "reason": reason, "code": key, "record": rec})

    def __call__(self, rec: Record) -> bool:
        """Apply the decision in place; True when the record stays."""
        stage = self.stage
        if not stage.drop or not self.keys:
            return True
        fails = _failures(rec, self.keys, stage)
        if fails:
            reason, key = _reason(fails)
            self.reject_record(rec, reason, key)
            return False
        responses = rec.get("responses")
        if not responses:
            return True
        kept = []
        for i, resp in enumerate(responses):
            fails = _failures(resp, self.keys, stage)
            if not fails:
                kept.append(resp)
                continue
            reason, key = _reason(fails)
            self.stats.responses_rejected += 1
            self.stats.rejected[key] += 1
            self.rejected.write({"stage": stage.label, "kind": "response", "id": rec.get("id"), "index": i,
                                 "source": rec.get("source"), "domain": rec.get("domain"),
                                 "prompt": prompt_text(rec), "reason": reason, "code": key, "response": resp})
        if len(kept) != len(responses):
            rec["responses"] = kept
            # so a later pass rate can count what was sampled, whatever dropped it
            meta = rec.get("meta")
            if meta is None:
                meta = rec["meta"] = {}
            meta["responses_rejected"] = meta.get("responses_rejected", 0) + len(responses) - len(kept)
            if not kept and stage.drop_empty:
                key = self.keys[0] if len(self.keys) == 1 else stage.label
                self.reject_record(rec, f"{stage.label}: no response passed", f"{key}: {NO_RESPONSE_LEFT}")
                return False
        return True
