"""The viewer's pages: a filterable list of items and one item with all its responses."""

from __future__ import annotations

from dataclasses import asdict
from html import escape
from typing import Any
from urllib.parse import urlencode

import numpy as np
import orjson

from assay.report.analyze import prompt_of
from assay.report.style import VIEWER_CSS
from assay.report.viewer.index import KEPT, Query, RunIndex

PAGE = 50
SAME_ID_LIMIT = 200
KIND_NAMES = {0: "record", 1: "record", 2: "response"}

SCRIPT = """
document.querySelectorAll('form.filters select').forEach(function (s) {
  s.addEventListener('change', function () { s.form.submit(); });
});
"""


class NotFound(Exception):
    pass


def query_from(params: dict[str, str]) -> Query:
    return Query(**{k: params.get(k, "").strip() for k in Query.__dataclass_fields__})


def _qs(query: Query, **extra: Any) -> str:
    data = {k: v for k, v in asdict(query).items() if v}
    data.update({k: v for k, v in extra.items() if v not in (None, "")})
    return urlencode(data)


def _page(title: str, body: str, idx: RunIndex) -> str:
    name = str(idx.stats.get("pipeline") or idx.root.name)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{VIEWER_CSS}</style></head>"
            f"<body><header class='top'><h1><a href='/' style='color:#fff;text-decoration:none'>assay view</a>: "
            f"{escape(name)}</h1><div class='sub'>{escape(str(idx.root))} · read-only</div></header>"
            f"<main>{_progress(idx)}{body}</main><script>{SCRIPT}</script></body></html>")


def _progress(idx: RunIndex) -> str:
    p = idx.progress
    if p.error:
        return f"<div class='note'>{escape(p.error)}</div>"
    if p.done:
        extra = f" ({p.unreadable:,} unreadable lines skipped)" if p.unreadable else ""
        return (f"<p class='muted' id='index-status' data-done='1'>{p.rows:,} items indexed in {p.seconds:.1f}s"
                f"{extra}</p>")
    pct = p.bytes_done / p.bytes_total if p.bytes_total else 1.0
    return (f"<div class='note' id='index-status' data-done='0'>indexing: {pct:.0%} ({p.rows:,} items so far); "
            "the lists show what is indexed yet: <a href=''>reload</a> to update.</div>")


def _select(name: str, label: str, current: str, options: list[tuple[str, str]]) -> str:
    opts = ["<option value=''>all</option>"]
    for value, text in options:
        sel = " selected" if value == current else ""
        opts.append(f"<option value='{escape(value, quote=True)}'{sel}>{escape(text)}</option>")
    if current and current not in {v for v, _ in options}:
        opts.append(f"<option value='{escape(current, quote=True)}' selected>{escape(current)} (0)</option>")
    return f"<label>{label}<select name='{name}' id='f-{name}'>{''.join(opts)}</select></label>"


def _filters(query: Query, facets: dict[str, list[tuple[str, int]]]) -> str:
    sets = [(v, f"{'kept (output)' if v == KEPT else 'rejected by ' + v} ({c:,})") for v, c in facets["set"]]
    def counted(name: str) -> list[tuple[str, str]]:
        return [(v, f"{v} ({c:,})") for v, c in facets[name][:500]]
    return ("<form class='filters' method='get' action='/'>"
            + _select("set", "where", query.set, sets)
            + _select("kind", "kind", query.kind, [("record", "records"), ("response", "responses")])
            + _select("reason", "reason", query.reason, counted("reason"))
            + _select("source", "source", query.source, counted("source"))
            + _select("domain", "domain", query.domain, counted("domain"))
            + _select("label", "label", query.label, counted("label"))
            + _select("check", "check verdict", query.check,
                      [("check:" + v, f"{v} ({c:,})") for v, c in facets["check"]])
            + f"<label>search (all words)<input type='search' name='q' id='f-q' value='{escape(query.q, quote=True)}'"
            " placeholder='text, id, answer...'></label><button type='submit' id='f-go'>filter</button>"
            "<a href='/' id='f-reset'>reset</a></form>")


def list_items(idx: RunIndex, params: dict[str, str]) -> dict[str, Any]:
    """The rows of a list page: {items, total (None while searching), start, next, scanned, candidates}."""
    query = query_from(params)
    start = _int(params.get("start"), 0)
    cols, posts = idx.snapshot()
    rows = np.flatnonzero(idx.mask(query, cols, posts))
    total: int | None = len(rows)
    scanned = finished = None
    if query.q:
        after = _int(params.get("after"), -1)
        candidates = rows[rows > after] if after >= 0 else rows
        hits, scanned, finished = idx.search(candidates, cols, query.q, want=PAGE)
        page = hits
        # go on after the last row looked at (the last hit when the page filled up)
        next_after = None if finished or not scanned else int(candidates[scanned - 1])
        total = None
    else:
        page = [int(r) for r in rows[start:start + PAGE]]
        next_after = None
    items = [_summary(idx, r, cols) for r in page]
    return {"items": items, "total": total, "start": start, "after": next_after, "scanned": scanned,
            "finished": finished, "candidates": len(rows), "query": query, "facets": idx.facets(cols, posts)}


def _summary(idx: RunIndex, row: int, cols: dict[str, np.ndarray]) -> dict[str, Any]:
    item = idx.read(row, cols)
    kind = int(cols["kind"][row])
    if kind == 0:
        rec, reason = item, ""
    else:
        rec = item.get("record") if kind == 1 else None
        reason = str(item.get("reason") or "")
    holder = rec if isinstance(rec, dict) else item
    prompt = prompt_of(holder) if isinstance(rec, dict) else str(item.get("prompt") or "")
    resp = item.get("response") if kind == 2 and isinstance(item.get("response"), dict) else None
    return {"row": row, "id": holder.get("id"), "set": idx.sets.names[int(cols["set"][row])],
            "kind": KIND_NAMES[kind], "reason": reason, "code": idx.reasons.names[int(cols["reason"][row])],
            "source": holder.get("source"), "domain": holder.get("domain"),
            "responses": int(cols["responses"][row]), "prompt": prompt[:180],
            "response": str(resp.get("text") or "")[:160] if resp is not None else None,
            "index": item.get("index") if kind == 2 else None,
            "file": idx.files[int(cols["file"][row])].rel, "line": int(cols["line"][row])}


def list_page(idx: RunIndex, params: dict[str, str]) -> str:
    res = list_items(idx, params)
    query: Query = res["query"]
    if res["total"] is not None:
        shown_to = res["start"] + len(res["items"])
        head = (f"<p id='result-count' data-total='{res['total']}'><b>{res['total']:,}</b> items match"
                + (f"; showing {res['start'] + 1:,}-{shown_to:,}" if res["items"] else "") + "</p>")
    else:
        more = "" if res["finished"] else " (search paused: more below)"
        head = (f"<p id='result-count' data-hits='{len(res['items'])}'><b>{len(res['items'])}</b> matches for "
                f"'{escape(query.q)}' in {res['scanned']:,} of {res['candidates']:,} filtered items{more}</p>")
    rows = []
    for it in res["items"]:
        where = "kept" if it["set"] == KEPT else f"rejected by {it['set']}"
        detail = f"<div class='muted small'>{escape(it['reason'][:160])}</div>" if it["reason"] else ""
        answer = "" if it["response"] is None else (
            f"<div class='muted small'>response {'' if it['index'] is None else int(it['index']) + 1}: "
            f"{escape(it['response'])}</div>")
        rows.append(f"<tr data-row='{it['row']}' data-set='{escape(it['set'])}'><td><a href='/item?row={it['row']}'>"
                    f"{escape(str(it['id']))}</a></td><td>{escape(where)}</td><td>{it['kind']}</td>"
                    f"<td><span class='reason'>{escape(it['code'])}</span>{detail}</td>"
                    f"<td>{escape(str(it['source'] or ''))}</td>"
                    f"<td>{escape(str(it['domain'] or ''))}</td><td class='n'>{it['responses']}</td>"
                    f"<td class='prompt'>{escape(it['prompt'])}{answer}</td></tr>")
    table = ("<table class='items' id='items'><thead><tr><th>id</th><th>where</th><th>kind</th><th>reason</th>"
             "<th>source</th><th>domain</th><th class='n'>responses</th><th>prompt</th></tr></thead><tbody>"
             + "".join(rows) + "</tbody></table>") if rows else "<p id='no-items'>Nothing matches.</p>"
    pager = []
    if res["total"] is not None:
        if res["start"] > 0:
            pager.append(f"<a id='prev' href='/?{_qs(query, start=max(0, res['start'] - PAGE))}'>previous</a>")
        if res["start"] + PAGE < res["total"]:
            pager.append(f"<a id='next' href='/?{_qs(query, start=res['start'] + PAGE)}'>next</a>")
    elif res["after"] is not None:
        pager.append(f"<a id='next' href='/?{_qs(query, after=res['after'])}'>more matches</a>")
    body = _filters(query, res["facets"]) + head + table + f"<div class='pager'>{''.join(pager)}</div>"
    return _page("assay view", body, idx)


# ---- one item ----------------------------------------------------------------------------------


def find_row(idx: RunIndex, params: dict[str, str]) -> int:
    cols, _ = idx.snapshot()
    if "row" in params:
        row = _int(params["row"], -1)
        if 0 <= row < len(cols["offset"]):
            return row
        raise NotFound(f"no item {params['row']!r}")
    if "file" in params and "line" in params:
        row = idx.row_at(params["file"], _int(params["line"], -1), cols)
        if row is not None:
            return row
        raise NotFound(f"no item at {params['file']}:{params['line']} (indexing may still be running)")
    raise NotFound("give ?row=N or ?file=PATH&line=N")


def item_data(idx: RunIndex, row: int) -> dict[str, Any]:
    """The item, its record's fields, and every response of the same prompt across the run."""
    cols, _ = idx.snapshot()
    item = idx.read(row, cols)
    kind = int(cols["kind"][row])
    rec = item if kind == 0 else item.get("record") if kind == 1 else None
    prompt = prompt_of(rec) if isinstance(rec, dict) else str(item.get("prompt") or "")
    base = rec if isinstance(rec, dict) else None
    responses: list[dict[str, Any]] = []
    related: list[dict[str, Any]] = []
    for r in idx.same_id(row, cols)[:SAME_ID_LIMIT]:
        other = item if r == row else idx.read(r, cols)
        k = int(cols["kind"][r])
        other_rec = other if k == 0 else other.get("record") if k == 1 else None
        other_prompt = prompt_of(other_rec) if isinstance(other_rec, dict) else str(other.get("prompt") or "")
        if other_prompt != prompt:  # an id shared by different records: not the same prompt
            continue
        where = idx.sets.names[int(cols["set"][r])]
        related.append({"row": r, "set": where, "kind": KIND_NAMES[k], "reason": str(other.get("reason") or "")})
        if base is None and isinstance(other_rec, dict):
            base = other_rec
        if k == 0:
            responses += [{"status": "kept", "stage": None, "reason": "", "response": resp, "row": r}
                          for resp in other.get("responses") or () if isinstance(resp, dict)]
        elif k == 1:
            responses += [{"status": "in a rejected record", "stage": where, "reason": str(other.get("reason") or ""),
                           "response": resp, "row": r}
                          for resp in other_rec.get("responses") or () if isinstance(resp, dict)]
        elif isinstance(other.get("response"), dict):
            responses.append({"status": "rejected", "stage": where, "reason": str(other.get("reason") or ""),
                              "response": other["response"], "row": r, "index": other.get("index")})
    return {"row": row, "item": item, "kind": KIND_NAMES[kind], "set": idx.sets.names[int(cols["set"][row])],
            "record": base, "prompt": prompt, "responses": responses, "related": related,
            "file": idx.files[int(cols["file"][row])].rel, "line": int(cols["line"][row])}


def item_page(idx: RunIndex, row: int) -> str:
    d = item_data(idx, row)
    item, rec = d["item"], d["record"] or {}
    rid = rec.get("id", item.get("id"))
    where = "kept (output)" if d["set"] == KEPT else f"rejected by {d['set']}"
    html = ["<p><a href='/' onclick='if (history.length > 1) { history.back(); return false; }'>&larr; back</a></p>",
            f"<h2 id='item-id'>{escape(str(rid))}</h2><p><span class='tag'>{escape(where)}</span>"
            f"<span class='tag'>{d['kind']}</span>"
            f"<span class='tag'>{escape(str(rec.get('source') or item.get('source') or ''))}</span>"
            f"<span class='tag'>{escape(str(rec.get('domain') or item.get('domain') or ''))}</span>"
            f"<span class='muted'>{escape(d['file'])}:{d['line']}</span></p>"]
    if item.get("reason"):
        html.append(f"<p class='reason' id='item-reason'>{escape(str(item['reason']))}</p>")
    html.append("<h3>prompt</h3>" + _prompt(rec, d["prompt"]))
    ref = rec.get("reference")
    if isinstance(ref, dict) and ref:
        html.append("<h3>reference</h3>" + _reference(ref))
    if isinstance(rec.get("labels"), dict) and rec["labels"]:
        html.append("<h3>labels</h3>" + _kv(rec["labels"]))
    if isinstance(rec.get("checks"), dict) and rec["checks"]:
        html.append("<h3>record checks</h3>" + checks_table(rec["checks"]))
    html.append(f"<h3>responses ({len(d['responses'])})</h3>")
    if d["responses"]:
        html.append("<div class='responses' id='responses'>" + "".join(
            _response(i, r) for i, r in enumerate(d["responses"])) + "</div>")
    else:
        html.append("<p class='muted'>no responses</p>")
    if len(d["related"]) > 1:
        html.append("<h3>this prompt in the run</h3><ul>" + "".join(
            f"<li><a href='/item?row={r['row']}'>{escape('kept' if r['set'] == KEPT else 'rejected by ' + r['set'])}"
            f" ({r['kind']})</a> <span class='muted'>{escape(r['reason'])}</span></li>" for r in d["related"])
            + "</ul>")
    raw = orjson.dumps(item, option=orjson.OPT_INDENT_2).decode()
    html.append(f"<details><summary>raw JSON ({len(raw):,} characters)</summary><pre>{escape(raw)}</pre></details>")
    return _page(f"assay view: {rid}", "".join(html), idx)


def _prompt(rec: dict[str, Any], prompt: str) -> str:
    messages = rec.get("messages")
    if isinstance(messages, list) and messages:
        return "".join(f"<h4>{escape(str(m.get('role')))}</h4><pre>{escape(str(m.get('content')))}</pre>"
                       for m in messages if isinstance(m, dict))
    return f"<pre id='item-prompt'>{escape(prompt)}</pre>"


def _reference(ref: dict[str, Any]) -> str:
    parts = []
    if ref.get("answer") is not None:
        parts.append(f"<p>answer: <code>{escape(str(ref['answer']))}</code></p>")
    if ref.get("solution"):
        parts.append(f"<details><summary>solution</summary><pre>{escape(str(ref['solution']))}</pre></details>")
    tests = ref.get("tests")
    if isinstance(tests, dict):
        cases = tests.get("cases")
        n = f", {len(cases)} cases" if isinstance(cases, list) else ""
        parts.append(f"<details><summary>tests ({escape(str(tests.get('kind')))}{n})</summary><pre>"
                     f"{escape(orjson.dumps(tests, option=orjson.OPT_INDENT_2).decode()[:20000])}</pre></details>")
    return "".join(parts)


def _kv(d: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{escape(str(k))}</td><td>{escape(_short(v))}</td></tr>" for k, v in d.items())
    return f"<table>{rows}</table>"


def _short(v: Any) -> str:
    text = v if isinstance(v, str) else orjson.dumps(v).decode()
    return text if len(text) <= 400 else text[:400] + "…"


def checks_table(checks: dict[str, Any]) -> str:
    rows = []
    for name, c in checks.items():
        if not isinstance(c, dict):
            continue
        ok = bool(c.get("passed"))
        score = c.get("score")
        extra = {k: v for k, v in c.items() if k not in ("passed", "score", "reason", "code")}
        rows.append(f"<tr data-check='{escape(name)}'><td>{escape(name)}</td>"
                    f"<td class='{'pass' if ok else 'fail'}'>{'pass' if ok else 'fail'}</td>"
                    f"<td>{escape(str(c.get('code') or ''))}</td>"
                    f"<td class='n'>{escape('' if score is None else str(score))}</td>"
                    f"<td>{escape(str(c.get('reason') or ''))}"
                    + (f"<div class='muted'>{escape(_short(extra))}</div>" if extra else "") + "</td></tr>")
    return ("<table class='checks'><thead><tr><th>check</th><th>verdict</th><th>code</th><th class='n'>score</th>"
            "<th>reason</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def check_lines(checks: dict[str, Any]) -> str:
    """Checks as short lines, for the narrow response columns."""
    out = []
    for name, c in checks.items():
        if not isinstance(c, dict):
            continue
        ok = bool(c.get("passed"))
        bits = [b for b in (str(c.get("code") or ""), "" if c.get("score") is None else f"score {c['score']}") if b]
        extra = {k: v for k, v in c.items() if k not in ("passed", "score", "reason", "code")}
        out.append(f"<div class='check-line' data-check='{escape(name)}'><b>{escape(name)}</b> "
                   f"<span class='{'pass' if ok else 'fail'}'>{'pass' if ok else 'fail'}</span> "
                   f"{escape(' · '.join(bits))}<div>{escape(str(c.get('reason') or ''))}</div>"
                   + (f"<div class='muted small'>{escape(_short(extra))}</div>" if extra else "") + "</div>")
    return "<div class='check-lines'>" + "".join(out) + "</div>"


def _response(i: int, r: dict[str, Any]) -> str:
    resp = r["response"]
    status = "kept" if r["status"] == "kept" else f"{r['status']} by {r['stage']}"
    meta = [f"{k}: {resp[k]}" for k in ("model", "finish_reason", "answer") if resp.get(k) not in (None, "")]
    usage = resp.get("usage")
    if isinstance(usage, dict) and usage:
        meta.append("usage: " + ", ".join(f"{k} {v}" for k, v in usage.items() if isinstance(v, (int, float))))
    cls = "resp" if r["status"] == "kept" else "resp rejected"
    html = [f"<div class='{cls}' data-status='{escape(r['status'])}'><h4>response {i + 1} · {escape(status)}</h4>"]
    if r["reason"]:
        html.append(f"<div class='reason'>{escape(r['reason'])}</div>")
    if meta:
        html.append(f"<div class='muted'>{escape(' · '.join(meta))}</div>")
    if isinstance(resp.get("checks"), dict) and resp["checks"]:
        html.append(check_lines(resp["checks"]))
    if resp.get("reasoning") and str(resp["reasoning"]) not in str(resp.get("text") or ""):
        html.append(f"<details><summary>reasoning</summary><pre>{escape(str(resp['reasoning']))}</pre></details>")
    html.append(f"<pre>{escape(str(resp.get('text') or ''))}</pre></div>")
    return "".join(html)


def not_found_page(idx: RunIndex, message: str) -> str:
    return _page("not found", f"<h2>Not found</h2><p>{escape(message)}</p><p><a href='/'>back to the list</a></p>", idx)


def _int(v: Any, default: int) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return default
