"""Teacher / model usage from the stages' counters in stats.json.

An LLM stage's counters (assay.teacher.stats.ClientStats.take) hold requests, sent, cached,
failed, retries, tokens_in, tokens_out, cost_usd, latency_s_sum and a latency histogram
`latency_s` of buckets `le_<seconds>` / `gt_<seconds>`. Any stage whose metrics (or one nested
dict of them) carry `requests` plus tokens or latencies is shown.
"""

from __future__ import annotations

import math
from typing import Any

from assay.report.analyze import StageView


def _bound(label: str) -> float | None:
    try:
        if label.startswith("le_"):
            return float(label[3:])
        if label.startswith("gt_"):
            return math.inf
    except ValueError:
        return None
    return None


def latency_percentiles(hist: dict[str, Any], qs: tuple[float, ...] = (0.5, 0.9, 0.99)) -> list[float | None]:
    """Upper bucket bounds of the quantiles of a latency histogram (None when empty)."""
    items = sorted((b, int(n)) for k, n in hist.items()
                   if isinstance(n, (int, float)) and n > 0 and (b := _bound(str(k))) is not None)
    total = sum(n for _, n in items)
    out: list[float | None] = []
    for q in qs:
        if not total:
            out.append(None)
            continue
        seen = 0
        for bound, n in items:
            seen += n
            if seen >= q * total:
                out.append(bound)
                break
    return out


def _is_usage(m: Any) -> bool:
    return isinstance(m, dict) and "requests" in m and any(k in m for k in ("tokens_in", "tokens_out", "latency_s"))


def _num(m: dict[str, Any], key: str) -> float:
    v = m.get(key)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else 0


def teacher_rows(stages: list[StageView]) -> list[dict[str, Any]]:
    rows = []
    for s in stages:
        metrics = s.stats.get("metrics")
        if not isinstance(metrics, dict):
            continue
        found = [(s.label, metrics)] if _is_usage(metrics) else []
        found += [(f"{s.label} ({k})", v) for k, v in metrics.items() if _is_usage(v)]
        for name, m in found:
            hist = m.get("latency_s") if isinstance(m.get("latency_s"), dict) else {}
            observed = sum(v for v in hist.values() if isinstance(v, (int, float)))
            p50, p90, p99 = latency_percentiles(hist)
            requests = _num(m, "requests")
            rows.append({
                "stage": name, "requests": requests, "sent": _num(m, "sent"), "cached": _num(m, "cached"),
                "hit_rate": f"{_num(m, 'cached') / requests:.0%}" if requests else "-",
                "failed": _num(m, "failed"), "retries": _num(m, "retries"), "tokens_in": _num(m, "tokens_in"),
                "tokens_out": _num(m, "tokens_out"), "cost_usd": round(_num(m, "cost_usd"), 4),
                "latency_mean": round(_num(m, "latency_s_sum") / observed, 3) if observed else "-",
                "p50": _show(p50), "p90": _show(p90), "p99": _show(p99),
                "errors": m.get("errors") if isinstance(m.get("errors"), dict) else {},
            })
    return rows


def _show(bound: float | None) -> Any:
    if bound is None:
        return "-"
    return "> 1000" if math.isinf(bound) else f"≤ {bound:g}"
