"""The report as one self-contained HTML page (inline CSS and SVG, no script, opens offline)."""

from __future__ import annotations

import re
from html import escape
from typing import Any
from urllib.parse import urlencode

import orjson

from assay.report.analyze import Analysis, Example, StageView
from assay.report.checks import CheckSummary
from assay.report.dist import Counts, Numeric, bin_edges
from assay.report.svg import BLUE, GREEN, GREY, ORANGE, PURPLE, RED, Series, fmt, hbars, histogram
from assay.report.teacher import teacher_rows

TOP_CATEGORIES = 14
VIEWER = "http://127.0.0.1:8765"


def _n(d: Any, key: str) -> int:
    v = d.get(key) if isinstance(d, dict) else None
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0


def _slug(s: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]+", "-", s).strip("-") or "x"


def _num_td(v: Any, col: str = "") -> str:
    attr = f' data-col="{col}"' if col else ""
    return f'<td class="n"{attr}>{escape(fmt(v) if isinstance(v, (int, float)) else str(v))}</td>'


def _table(head: list[str], rows: list[list[Any]], *, numeric_from: int = 1, attrs: str = "") -> str:
    out = [f"<table{attrs}><thead><tr>"]
    out += [f'<th class="{"n" if i >= numeric_from else ""}">{escape(h)}</th>' for i, h in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(_num_td(c) if i >= numeric_from and isinstance(c, (int, float)) else
                                   f"<td>{escape(str(c))}</td>" for i, c in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


# ---- sections ----------------------------------------------------------------------------------


def _summary(a: Analysis) -> str:
    st, inp, out = a.stats, a.stats.get("input") or {}, a.stats.get("output") or {}
    rec_rej = sum(_n(s.stats, "records_rejected") for s in a.stages)
    resp_rej = sum(_n(s.stats, "responses_rejected") for s in a.stages)
    tiles = [("input rows", _n(inp, "rows"), "input-rows"), ("valid records", _n(inp, "records"), "input-records"),
             ("unreadable rows", _n(inp, "invalid"), "input-invalid"),
             ("kept records", _n(out, "records"), "output-records"),
             ("kept responses", _n(out, "responses"), "output-responses"),
             ("records rejected", rec_rej, "records-rejected"), ("responses rejected", resp_rej, "responses-rejected")]
    html = ['<section id="summary"><h2>Summary</h2><div class="tiles">']
    for k, v, tid in tiles:
        html.append(f'<div class="tile" data-testid="{tid}"><div class="v">{fmt(v)}</div>'
                    f'<div class="k">{k}</div></div>')
    wall = st.get("wall_seconds")
    shown = fmt(wall) if isinstance(wall, (int, float)) and not isinstance(wall, bool) else "-"
    html.append(f'<div class="tile"><div class="v">{shown}s</div>'
                f'<div class="k">wall time, {fmt(_n(st, "workers"))} workers</div></div></div>')
    if _n(inp, "rows"):
        kept = _n(out, "records") / _n(inp, "rows")
        html.append(f'<p class="muted">{kept:.1%} of the input rows became kept records, across {len(a.stages)} '
                    f"stage(s) and {fmt(_n(st, 'shards'))} shard(s).</p>")
    html.append("</section>")
    return "".join(html)


def _funnel(a: Analysis) -> str:
    inp = a.stats.get("input") or {}
    labels = ["read"] + [s.label for s in a.stages]
    recs = [_n(inp, "records")] + [_n(s.stats, "records_out") for s in a.stages]
    resps = [_n(inp, "responses")] + [_n(s.stats, "responses_out") for s in a.stages]
    series = [Series("records", recs, BLUE)] + ([Series("responses", resps, PURPLE)] if any(resps) else [])
    chart = hbars(labels, series, title="records and responses left after each stage")
    cols = ("records_in", "records_out", "records_rejected", "responses_in", "responses_out", "responses_rejected",
            "skipped", "seconds")
    rows = ['<table id="funnel-table"><thead><tr><th>stage</th><th>type</th><th class="n">records in</th>'
            '<th class="n">records out</th><th class="n">records rejected</th><th class="n">responses in</th>'
            '<th class="n">responses out</th><th class="n">responses rejected</th><th class="n">skipped</th>'
            '<th class="n">seconds</th><th>top reason</th></tr></thead><tbody>']
    top_invalid = next(iter(inp.get("invalid_reasons") or {}), "")
    read = {"records_in": _n(inp, "rows"), "records_out": _n(inp, "records"), "records_rejected": _n(inp, "invalid"),
            "responses_in": _n(inp, "responses"), "responses_out": _n(inp, "responses"), "responses_rejected": 0,
            "skipped": 0, "seconds": inp.get("seconds", 0)}
    rows.append(_funnel_row("read", "read", read, cols, top_invalid))
    for s in a.stages:
        top = next(iter(s.stats.get("rejected") or {}), "")
        rows.append(_funnel_row(s.label, s.type, s.stats, cols, top))
    rows.append("</tbody></table>")
    return (f'<section id="funnel"><h2>Funnel</h2><p class="muted">Records and responses left after each stage '
            f"(numbers from stats.json; a stage drops records, or responses of records it keeps).</p>"
            f'{chart}{"".join(rows)}</section>')


def _funnel_row(label: str, kind: str, d: dict[str, Any], cols: tuple[str, ...], top: str) -> str:
    cells = "".join(_num_td(d.get(c, 0) if isinstance(d.get(c, 0), (int, float)) else 0, c) for c in cols)
    link = f'<a href="#stage-{_slug(label)}">{escape(label)}</a>' if label != "read" else (
        '<a href="#invalid">read</a>')
    return (f'<tr data-stage="{escape(label)}"><td>{link}</td><td>{escape(kind)}</td>{cells}'
            f'<td class="muted">{escape(top)}</td></tr>')


def _rejections(a: Analysis) -> str:
    html = ['<section id="rejections"><h2>Why records and responses were dropped</h2>'
            f'<p class="muted">Reasons per stage with counts from stats.json; up to {a.examples_per_reason} examples '
            "per reason (the first ones in the stage's rejected file, from different records where it has them), "
            "each with its full item.</p>"]
    html.append(_invalid(a))
    any_stage = False
    for s in a.stages:
        reasons = {k: v for k, v in (s.stats.get("rejected") or {}).items() if isinstance(v, (int, float))}
        for code, shown in s.examples.items():  # reasons seen in the file but missing from stats
            reasons.setdefault(code, len(shown))
        if not reasons:
            continue
        any_stage = True
        html.append(_stage_rejections(s, reasons))
    if not any_stage:
        html.append("<p>No stage dropped anything.</p>")
    html.append("</section>")
    return "".join(html)


def _stage_rejections(s: StageView, reasons: dict[str, Any]) -> str:
    items = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    rec_in, resp_in = _n(s.stats, "records_in"), _n(s.stats, "responses_in")
    html = [f'<div class="stage-rejections" id="stage-{_slug(s.label)}" data-stage="{escape(s.label)}">',
            f'<h3>{escape(s.label)} <span class="muted">({escape(s.type)})</span></h3>']
    kinds = ", ".join(f"{v:,} {k}s" for k, v in s.kinds.most_common())
    if kinds:
        html.append(f'<p class="muted">rejected file {escape(s.file or "")}: {kinds}</p>')
    if len(items) > 1:
        html.append(hbars([k for k, _ in items[:20]], [Series("dropped", [v for _, v in items[:20]], RED)],
                          title=f"reasons of {s.label}"))
    html.append('<table class="reasons"><thead><tr><th>reason</th><th class="n">count</th><th>what</th>'
                '<th class="n">share of the stage\'s input</th></tr></thead><tbody>')
    for code, count in items:
        kinds = s.reason_kinds.get(code) or {}
        what, shares = [], []
        for kind, total in (("record", rec_in), ("response", resp_in)):
            n = kinds.get(kind, 0)
            if n:
                what.append(f"{n:,} {kind}s")
                shares.append(f"{n / total:.1%} of {kind}s" if total else "-")
        html.append(f'<tr data-reason="{escape(code)}"><td>{escape(code)}</td>{_num_td(count, "count")}'
                    f'<td>{escape(", ".join(what))}</td><td class="n">{escape(", ".join(shares))}</td></tr>')
    html.append("</tbody></table>")
    for code, _ in items:
        shown = s.examples.get(code) or []
        if shown:
            html.append(f'<details class="reason-examples" data-reason="{escape(code)}"><summary>'
                        f"{len(shown)} example(s): {escape(code)}</summary>")
            html += [_example(e) for e in shown]
            html.append("</details>")
    html.append("</div>")
    return "".join(html)


def _example(e: Example) -> str:
    link = VIEWER + "/item?" + urlencode({"file": e.file, "line": e.line})
    checks = "".join(
        f"<tr><td>{escape(name)}</td><td>{escape(_check_line(c))}</td></tr>" for name, c in e.checks.items())
    parts = [f'<div class="example" data-id="{escape(e.id or "")}">',
             f'<div><b>{escape(e.id or "(no id)")}</b> <span class="tag">{escape(e.kind)}</span> '
             f'<span class="muted">{escape(e.file)}:{e.line}</span> · '
             f'<a href="{escape(link)}" title="start the browser first: assay view RUN_DIR">open in assay view</a>'
             "</div>",
             f'<div class="reason">{escape(e.reason)}</div>']
    if checks:
        parts.append(f'<table class="checks">{checks}</table>')
    if e.prompt:
        parts.append(f"<h4>prompt</h4><pre>{escape(e.prompt)}</pre>")
    if e.response is not None:
        parts.append(f"<h4>response</h4><pre>{escape(e.response)}</pre>")
    parts.append(f"<details><summary>full item</summary><pre>{escape(e.full)}</pre></details></div>")
    return "".join(parts)


def _check_line(c: dict[str, Any]) -> str:
    verdict = "pass" if c.get("passed") else "fail"
    rest = ", ".join(f"{k}={fmt(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v}"
                     for k, v in c.items() if k not in ("passed",) and v not in (None, ""))
    return f"{verdict}: {rest}"


def _invalid(a: Analysis) -> str:
    inp = a.stats.get("input") or {}
    reasons = inp.get("invalid_reasons") or {}
    if not _n(inp, "invalid") and not a.invalid_examples:
        return ""
    html = [f'<div id="invalid" class="stage-rejections" data-stage="read"><h3>read: unreadable input rows '
            f'<span class="muted">({fmt(_n(inp, "invalid"))}, in invalid/invalid.jsonl)</span></h3>']
    if reasons:
        html.append(_table(["error", "rows"], [[k, v] for k, v in reasons.items()]))
    for ex in a.invalid_examples:
        html.append(f'<div class="example"><div><b>{escape(str(ex.get("file")))}:{escape(str(ex.get("line")))}</b>'
                    f'</div><div class="reason">{escape(str(ex.get("error")))}</div>'
                    f'<pre>{escape(ex.get("raw") or "")}</pre></div>')
    html.append("</div>")
    return "".join(html)


# ---- checks ------------------------------------------------------------------------------------


def _checks(a: Analysis) -> str:
    checks = a.checks.ordered(a.check_order)
    html = ['<section id="checks"><h2>Checks: verdicts and scores</h2>'
            '<p class="muted">Every check written by the run, over every item it was computed on (kept and '
            "rejected): verdict categories (the check's <code>code</code>, else passed / failed) and a histogram "
            "of each numeric field, split by verdict.</p>"]
    if not checks:
        html.append("<p>No checks were written.</p>")
    for c in checks:
        html.append(_check_card(c, a.stage_type_of_check(c.name)))
    html.append("</section>")
    return "".join(html)


def _check_card(c: CheckSummary, stage_type: str | None) -> str:
    kind = f" · stage {stage_type}" if stage_type else ""
    html = [f'<div class="check" id="check-{_slug(c.level + "-" + c.name)}" data-check="{escape(c.name)}">'
            f'<h3>{escape(c.name)} <span class="muted">({c.level}s{escape(kind)})</span></h3>'
            f'<p><span class="pass">{fmt(c.passed)} passed</span> · <span class="fail">{fmt(c.failed)} failed</span>'
            f' · {fmt(c.total)} {c.level}s checked</p><div class="grid2">']
    codes = c.codes.top(TOP_CATEGORIES)
    if len(codes) > 1 or (codes and codes[0][0] not in ("passed", "failed")):
        colors = [GREEN if k in ("passed", "correct", "accepted", "ok") else RED for k, _ in codes]
        chart = hbars([k for k, _ in codes], [Series("count", [v for _, v in codes], RED)],
                      title=f"verdicts of {c.name}", colors=colors)
        html.append(f"<div><h4>verdicts</h4>{chart}</div>")
    small: list[list[Any]] = []
    for key, dist in sorted(c.numbers.items(), key=lambda kv: (kv[0] != "score", kv[0])):
        if dist.count == 0 or (key == "cluster_size" and c.cluster_sizes.total):
            continue
        both = [d for d in (dist.passed, dist.failed) if d.count]
        lo, hi = min(d.lo for d in both), max(d.hi for d in both)
        mean = sum(d.total for d in both) / sum(d.count for d in both)
        distinct = len(set(dist.passed.sample) | set(dist.failed.sample))
        main = key == "score" or "." in key  # the verdict's score, or a stage's named scores (reward)
        if distinct < 2 or not (main or (dist.count >= 20 and distinct >= 3)):
            small.append([key, dist.count, lo, mean, hi])
            continue
        edges, open_end = bin_edges([dist.passed, dist.failed])
        series = [Series("passed", dist.passed.counts(edges), GREEN), Series("failed", dist.failed.counts(edges), RED)]
        html.append(f'<div class="score-hist" data-field="{escape(key)}"><h4>{escape(key)} <span class="muted">'
                    f"(n={fmt(dist.count)}, min {fmt(lo)}, mean {fmt(mean)}, max {fmt(hi)})</span></h4>"
                    + histogram(edges, series, stacked=True, open_end=open_end, xlabel=key, title=f"{c.name} {key}")
                    + "</div>")
    for key, counts in c.telling_strings().items():
        html.append(f"<div><h4>{escape(key)}</h4>"
                    + hbars([k for k, _ in counts.top(TOP_CATEGORIES)],
                            [Series(key, [v for _, v in counts.top(TOP_CATEGORIES)], ORANGE)], title=key) + "</div>")
    html.append("</div>")
    if small:
        html.append("<details><summary>other numeric fields</summary>"
                    + _table(["field", "n", "min", "mean", "max"], small) + "</details>")
    html.append("</div>")
    return "".join(html)


# ---- distributions -----------------------------------------------------------------------------


def _distributions(a: Analysis) -> str:
    b, af = a.before, a.after
    html = ['<section id="distributions"><h2>Distributions before and after</h2>'
            f'<p class="muted">before: the {fmt(b.records)} records as read ({fmt(b.responses)} responses); after: the '
            f"{fmt(af.records)} kept records ({fmt(af.responses)} responses). Lengths in tokens: {escape(a.tokens)}."
            "</p><div class='grid2'>"]
    if not b.records:
        html.insert(1, "<div class='note'>The records as read are not in the run directory (stages/00-read is "
                       "gone), so only the kept records are shown.</div>")
    html.append(_numeric_pair("prompt length (tokens)", b.prompt_tokens, af.prompt_tokens, "prompt-tokens"))
    if b.response_tokens.count or af.response_tokens.count:
        html.append(_numeric_pair("response length (tokens)", b.response_tokens, af.response_tokens,
                                  "response-tokens"))
    constant = []
    for name in sorted(set(b.numeric) | set(af.numeric), key=_field_rank):
        pair = (b.numeric.get(name, Numeric()), af.numeric.get(name, Numeric()))
        live = [d for d in pair if d.count]
        if live and all(d.lo == d.hi == live[0].lo for d in live):
            constant.append(f"{name} = {fmt(live[0].lo)} ({' / '.join(fmt(d.count) for d in live)} values)")
            continue
        html.append(_numeric_pair(name, *pair, name))
    for name in sorted(set(b.categorical) | set(af.categorical), key=_field_rank):
        html.append(_category_pair(name, b.categorical.get(name), af.categorical.get(name)))
    html.append("</div>")
    if constant:
        html.append(f"<p class='muted'>same value everywhere: {escape('; '.join(constant))}</p>")
    html.append("</section>")
    return "".join(html)


def _field_rank(name: str) -> tuple[int, str]:
    order = ["domain", "source", "labels.category", "labels.difficulty", "labels.language", "labels.quality",
             "route", "response.model", "response.finish_reason"]
    return (order.index(name) if name in order else len(order), name)


def _numeric_pair(title: str, before: Numeric, after: Numeric, key: str) -> str:
    edges, open_end = bin_edges([before, after])
    if not edges:
        return ""
    series = [Series("before", before.counts(edges), GREY), Series("after", after.counts(edges), BLUE)]
    stats = []
    for name, d in (("before", before), ("after", after)):
        if d.count:
            stats.append(f"{name}: n={fmt(d.count)}, median {fmt(d.quantile(0.5))}, p90 {fmt(d.quantile(0.9))}, "
                         f"max {fmt(d.hi)}")
    return (f'<div class="dist" data-field="{escape(key)}"><h4>{escape(title)}</h4>'
            + histogram(edges, series, open_end=open_end, title=title)
            + f'<div class="muted">{escape("; ".join(stats))}</div></div>')


def _category_pair(name: str, before: Counts | None, after: Counts | None) -> str:
    ref = before if before is not None and before.total else after
    if ref is None:
        return ""
    top = [k for k, _ in ref.top(TOP_CATEGORIES)]
    if after is not None and after.total and ref is not after:
        top += [k for k, _ in after.top(5) if k not in top]
    distinct = max(len(before or ()), len(after or ()))

    def values(c: Counts | None) -> list[float]:
        if c is None:
            return [0] * len(top)
        shown = dict(c.top(TOP_CATEGORIES + 5))
        return [shown.get(k, c.counts.get(k, 0)) for k in top]

    note = f" <span class='muted'>(top {TOP_CATEGORIES} of {fmt(distinct)})</span>" if distinct > TOP_CATEGORIES else ""
    return (f'<div class="dist" data-field="{escape(name)}"><h4>{escape(name)}{note}</h4>'
            + hbars(top, [Series("before", values(before), GREY), Series("after", values(after), BLUE)], title=name)
            + "</div>")


# ---- teacher, dedup, metrics, config -----------------------------------------------------------


def _teacher(a: Analysis) -> str:
    rows = teacher_rows(a.stages)
    if not rows:
        return ""
    head = ["stage", "requests", "sent", "cache hits", "hit rate", "failed", "retries", "tokens in", "tokens out",
            "cost (USD)", "mean latency (s)", "p50 (s)", "p90 (s)", "p99 (s)"]
    body = [[r["stage"], r["requests"], r["sent"], r["cached"], r["hit_rate"], r["failed"], r["retries"],
             r["tokens_in"], r["tokens_out"], r["cost_usd"], r["latency_mean"], r["p50"], r["p90"], r["p99"]]
            for r in rows]
    errors = [f"{r['stage']}: " + ", ".join(f"{k} ({v})" for k, v in r["errors"].items()) for r in rows if r["errors"]]
    return ('<section id="teacher"><h2>Teacher and model usage</h2><p class="muted">From the stages\' counters in '
            "stats.json; latency percentiles are upper bounds of histogram buckets.</p>"
            + _table(head, body, attrs=' id="teacher-table"')
            + ("".join(f"<p class='muted'>errors: {escape(e)}</p>" for e in errors)) + "</section>")


def _dedup(a: Analysis) -> str:
    parts = []
    for c in a.checks.ordered(a.check_order):
        if c.cluster_sizes.total:
            sizes = sorted(((int(k), v) for k, v in c.cluster_sizes.counts.items() if k.isdigit()))
            removed = sum((k - 1) * v for k, v in sizes)
            labels = [str(k) for k, _ in sizes[:30]]
            values: list[float] = [v for _, v in sizes[:30]]
            if len(sizes) > 30:
                labels.append(f"> {sizes[29][0]}")
                values.append(sum(v for _, v in sizes[30:]))
            parts.append(f'<div data-check="{escape(c.name)}"><h3>{escape(c.name)}: duplicate clusters</h3>'
                         f"<p>{fmt(c.cluster_sizes.total)} clusters with more than one record; {fmt(removed)} "
                         f"records removed as duplicates (each cluster keeps one).</p>"
                         + hbars([f"size {lbl}" for lbl in labels], [Series("clusters", values, ORANGE)],
                                 title="cluster sizes") + "</div>")
    for c in a.checks.ordered(a.check_order):
        stage_type = a.stage_type_of_check(c.name) or ""
        if c.benchmarks.total or ("decontam" in stage_type or "decontam" in c.name):
            hits = c.benchmarks.top(30) or [(k, v) for k, v in c.codes.top(30) if k != "passed"]
            parts.append(f'<div data-check="{escape(c.name)}"><h3>{escape(c.name)}: contamination hits per benchmark'
                         f"</h3><p>{fmt(c.failed)} of {fmt(c.total)} {c.level}s matched a benchmark.</p>"
                         + (hbars([k for k, _ in hits], [Series("hits", [v for _, v in hits], RED)],
                                  title="hits per benchmark") if hits else "") + "</div>")
    if not parts:
        return ""
    return '<section id="dedup"><h2>Duplicates and contamination</h2>' + "".join(parts) + "</section>"


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flatten(v, name + ".")
        elif isinstance(v, list):
            out.append((name, f"[{len(v)} items]"))
        else:
            out.append((name, v))
    return out


def _metrics(a: Analysis) -> str:
    blocks = []
    for s in a.stages:
        metrics = s.stats.get("metrics")
        if isinstance(metrics, dict) and metrics:
            rows = _flatten(metrics)
            blocks.append(f"<details><summary>{escape(s.label)} ({len(rows)} counters)</summary>"
                          + _table(["counter", "value"], [[k, v] for k, v in rows]) + "</details>")
    if not blocks:
        return ""
    return ('<section id="metrics"><h2>Stage counters</h2><p class="muted">Everything each stage counted '
            "(the <code>metrics</code> of stats.json).</p>" + "".join(blocks) + "</section>")


def _config(a: Analysis) -> str:
    versions = _table(["package", "version"], [[k, v] for k, v in a.versions.items()], numeric_from=9)
    where = "recorded by the run" if a.versions_from_run else (
        "of the environment that wrote this report (the run did not record its own)")
    config = (f"<h3>config.yaml</h3><pre id='config-text'>{escape(a.config_text)}</pre>" if a.config_text
              else "<p>config.yaml is missing from the run directory.</p>")
    stats = orjson.dumps(a.stats, option=orjson.OPT_INDENT_2).decode()
    return (f'<section id="config"><h2>Config and versions</h2>{config}<h3>versions <span class="muted">'
            f"({escape(where)})</span></h3>{versions}<details><summary>stats.json</summary>"
            f"<pre id='stats-json'>{escape(stats)}</pre></details></section>")


def _notes(a: Analysis) -> str:
    notes = list(a.sampled_notes)
    notes.append(f"token counts: {a.tokens}")
    if a.unreadable:
        notes.append("unreadable lines skipped: " + ", ".join(f"{k} ({v})" for k, v in a.unreadable.items()))
    items = "".join(f"<li>{escape(n)}</li>" for n in notes)
    sampled = " data-sampled=\"1\"" if a.sampled_notes else ""
    return f'<section id="notes"{sampled}><h2>Notes</h2><ul>{items}</ul></section>'


def render(a: Analysis) -> str:
    name = str(a.stats.get("pipeline") or a.run_dir.name)
    sections = [_summary(a), _funnel(a), _rejections(a), _checks(a), _distributions(a), _teacher(a), _dedup(a),
                _metrics(a), _config(a), _notes(a)]
    nav = "".join(f'<a href="#{sid}">{label}</a>' for sid, label in (
        ("summary", "summary"), ("funnel", "funnel"), ("rejections", "rejections"), ("checks", "checks"),
        ("distributions", "distributions"), ("teacher", "teacher"), ("dedup", "dedup"), ("metrics", "counters"),
        ("config", "config"), ("notes", "notes")) if f'id="{sid}"' in "".join(sections))
    sampled = ('<div class="note">Parts of this report are estimated from samples: see <a href="#notes">notes</a>.'
               "</div>") if a.sampled_notes else ""
    from assay.report.style import CSS

    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>assay report: {escape(name)}</title><style>{CSS}</style></head><body>"
            f"<header class='top'><h1>assay report: {escape(name)}</h1><div class='sub'>{escape(str(a.run_dir))} · "
            f"generated {escape(a.generated_at)} in {a.seconds:.1f}s</div><nav>{nav}</nav></header>"
            f"<main>{sampled}{''.join(sections)}</main></body></html>")
