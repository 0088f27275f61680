"""Stage `math-verify`: is each response's final answer equal to the reference answer?"""

from __future__ import annotations

import os
import threading
from collections import Counter, OrderedDict
from typing import Any, ClassVar, Literal

from pydantic import Field

from assay.record import Record, Response, Verdict, checks_of
from assay.stage import Execution, ResponseCheck, StageContext, stage
from assay.verify.extract import all_boxed, find_answer, split_reasoning
from assay.verify.math_cache import DecisionCache, Key
from assay.verify.math_compare import (
    MAX_UNANCHORED_CHARS,
    Judgement,
    as_number,
    last_plain_number,
    quick_judge,
    reference_answer,
    split_top_level,
)
from assay.verify.math_preload import ENV as PRELOAD_ENV

COMPARE_VERSION = "2"  # bump when math_compare decides any pair differently: it keys the persistent cache
MEMORY_CACHE_SIZE = 200_000
PRELOAD = ("assay.verify.math_compare", "math_verify", "sympy", "latex2sympy2_extended", "assay.verify.math_preload")


def warm_worker() -> None:
    """Worker initializer: load math-verify before the first deadline starts (a no-op when the
    fork server preloaded it, see math_preload)."""
    from assay.verify.math_compare import _mv

    _mv()


@stage("math-verify")
class MathVerify(ResponseCheck):
    """Checks each response's final answer against `reference.answer` (math-verify plus multiple
    choice, numbers with thousands separators / units / percentages, text answers, `x = 2`).

    The answer is the response's `answer` field, else the one extracted from its text (last
    `\\boxed{}`, `<answer>`, "final answer is", `####`, ...; only after a `<think>` block).
    Multiple-choice records carry the options in `meta.choices` and a letter as the reference.
    Every symbolic comparison runs in a worker process under a hard time limit; identical
    (reference, answer) pairs are decided once and remembered across runs.
    Check fields: passed, score (1/0), reason, code (correct, wrong_answer, no_answer,
    no_reference, gold_unparseable, unparseable_answer, timeout, error), answer, gold_parsed,
    pred_parsed.
    """

    execution: ClassVar[Execution] = "main"
    batch_size: ClassVar[int] = 2048
    version: ClassVar[str] = COMPARE_VERSION

    timeout_s: float = Field(5.0, gt=0, description="hard limit per comparison, in seconds; a comparison that "
                             "runs longer is killed and fails with code 'timeout'")
    workers: int | None = Field(None, ge=1, description="comparison processes (default: the run's workers)")
    missing_reference: Literal["fail", "skip"] = Field("fail", description="records without reference.answer: "
                                                       "'fail' (code no_reference) or 'skip' (no check written)")
    use_answer_field: bool = Field(True, description="use a response's `answer` field when it has one, instead of "
                                   "extracting the answer from its text")
    unmarked: bool = Field(True, description="when a response marks no final answer (no \\boxed{}, 'answer is', "
                           "'####', ...), take the last expression or number after its reasoning, as math-verify "
                           "does; never for multiple choice, text answers or responses cut off (finish_reason "
                           "'length'). false: such responses fail with code no_answer")
    persistent_cache: bool = Field(True, description="remember decisions across runs under the cache dir")
    memory_mb: int = Field(3072, ge=256, description="address-space limit of each comparison process (MB)")

    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        self._pool: Any = None
        self._pool_lock = threading.Lock()
        self._closed = False
        self._memo: OrderedDict[Key, Judgement] = OrderedDict()
        self._counts: Counter[str] = Counter()
        self._disk = DecisionCache(ctx.cache_dir / "math-verify" / "decisions.sqlite", COMPARE_VERSION) \
            if self.persistent_cache else None
        # Worker start-up (importing sympy, warming the LaTeX parser) takes a second or two: begin it
        # now, in the background, while the first batch's answers are extracted.
        threading.Thread(target=self._prestart, name="math-verify-prestart", daemon=True).start()

    def _prestart(self) -> None:
        try:
            self._workers().start()
        except Exception:  # the first map() will start them again and report the error properly
            pass

    def teardown(self) -> None:
        if getattr(self, "_pool_lock", None) is not None:
            with self._pool_lock:
                self._closed = True
                if self._pool is not None:
                    self._pool.close()
                    self._pool = None
        if getattr(self, "_disk", None) is not None:
            self._disk.close()

    def stats(self) -> dict[str, Any]:
        out = dict(self._counts)  # counts since the last call: the runner adds them up per shard
        self._counts.clear()
        return out

    # ---- work ---------------------------------------------------------------------------------
    def process_batch(self, records: list[Record]) -> None:
        items = [(rec, resp) for rec in records for resp in rec.get("responses") or ()]
        for (_, resp), verdict in zip(items, self.check_batch(items), strict=True):
            if verdict is not None:
                checks_of(resp)[self.key] = verdict.to_dict()

    def check_batch(self, items: list[tuple[Record, Response]]) -> list[Verdict | None]:  # type: ignore[override]
        verdicts: list[Verdict | None] = [None] * len(items)
        waiting: dict[Key, list[int]] = {}
        tasks: dict[Key, tuple[Any, ...]] = {}
        for i, (rec, resp) in enumerate(items):
            gold, choices = _reference(rec)
            if gold is None:
                self._counts["no_reference"] += 1
                if self.missing_reference == "fail":
                    verdicts[i] = Verdict(False, 0.0, "the record has no reference answer", "no_reference")
                continue
            answer, final = self._answer(resp)
            if answer is None and final is None:
                self._counts["no_answer"] += 1
                verdicts[i] = _verdict(Judgement(False, "no_answer", "no final answer found in the response"), None)
                continue
            alternates = _alternates(gold, answer, final) if answer is not None and final else ()
            key: Key = (gold, answer if not alternates else "\0".join((answer, *alternates)), choices) \
                if answer is not None else (gold, "\0unmarked\0" + (final or ""), choices)
            known = self._recall(key)
            if known is None and answer is not None and not alternates:
                known = quick_judge(gold, answer, list(choices) if choices else None)
            elif known is None and answer is None and not choices:
                known = _quick_unmarked(gold, final or "")
            if known is not None and key not in self._memo:
                self._counts["decided_fast"] += 1
                self._remember(key, known)
            elif known is not None:
                self._counts["decided_cached"] += 1
            if known is not None:
                verdicts[i] = _verdict(known, answer)
            else:
                waiting.setdefault(key, []).append(i)
                tasks[key] = (gold, answer, list(choices) if choices else None,
                              final if answer is None else None, alternates)
        if waiting:
            for key, judgement in self._decide(tasks).items():
                for i in waiting[key]:
                    verdicts[i] = _verdict(judgement, tasks[key][1])
        return verdicts

    def _answer(self, resp: Response) -> tuple[str | None, str | None]:
        """(the marked answer, the final part) ; (None, final part) asks for an unmarked reading."""
        given = resp.get("answer")
        if self.use_answer_field and given is not None and str(given).strip():
            return str(given).strip(), None
        text = resp.get("text") or ""
        _, final = split_reasoning(text)
        answer, marked = find_answer(text)
        if answer is not None:
            return answer, final
        if marked or not self.unmarked or not final or resp.get("finish_reason") == "length":
            return None, None
        return None, final[-MAX_UNANCHORED_CHARS:]

    def _recall(self, key: Key) -> Judgement | None:
        found = self._memo.get(key)
        if found is not None:
            self._memo.move_to_end(key)
        return found

    def _remember(self, key: Key, judgement: Judgement) -> None:
        self._memo[key] = judgement
        if len(self._memo) > MEMORY_CACHE_SIZE:
            self._memo.popitem(last=False)

    def _decide(self, tasks: dict[Key, tuple[Any, ...]]) -> dict[Key, Judgement]:
        """Decide pairs the fast path could not: the persistent cache, then the worker pool."""
        keys = list(tasks)
        decided: dict[Key, Judgement] = {}
        if self._disk is not None:
            decided = self._disk.get_many(keys)
            self._counts["decided_cached"] += len(decided)
            for key, j in decided.items():
                self._remember(key, j)
        todo = [k for k in keys if k not in decided]
        if not todo:
            return decided
        outcomes = self._workers().map([tasks[k] for k in todo])
        fresh = []
        for key, outcome in zip(todo, outcomes, strict=True):
            if outcome.ok:
                judgement = Judgement.from_dict(outcome.value)
                fresh.append((key, judgement))
                self._remember(key, judgement)
                self._counts["decided_math_verify"] += 1
            elif outcome.status == "timeout":
                judgement = Judgement(False, "timeout", f"comparison took longer than {self.timeout_s:g} s")
                self._counts["timeouts"] += 1
            else:
                judgement = Judgement(False, "error", f"comparison failed: {outcome.error}")
                self._counts["errors"] += 1
            decided[key] = judgement
        if self._disk is not None:
            self._disk.put_many(fresh)
        return decided

    def _workers(self) -> Any:
        with self._pool_lock:
            return self._make_pool()

    def _make_pool(self) -> Any:
        if self._closed:
            raise RuntimeError("math-verify used after teardown()")
        if self._pool is None:
            from assay.verify.deadline import DeadlinePool
            from assay.verify.math_compare import judge_task

            n = self.workers or self.ctx.workers or os.cpu_count() or 1
            self._pool = DeadlinePool(judge_task, n, self.timeout_s, initializer=warm_worker, preload=PRELOAD,
                                      memory_mb=self.memory_mb, max_tasks=20_000, env={PRELOAD_ENV: "1"})
        return self._pool


def _reference(rec: Record) -> tuple[str | None, tuple[str, ...] | None]:
    ref = rec.get("reference") or {}
    gold = ref.get("answer")
    if gold is None or isinstance(gold, (dict, list)) or not str(gold).strip():
        return None, None
    choices = (rec.get("meta") or {}).get("choices")
    if not isinstance(choices, list) or not choices:
        return str(gold).strip(), None
    return str(gold).strip(), tuple(str(c) for c in choices)


def _quick_unmarked(gold: str, final: str) -> Judgement | None:
    """A plain-text response that marks no answer, with a number as the reference: its last number,
    read here as math-verify would read it, without a trip to the worker processes."""
    if as_number(reference_answer(gold)) is None:
        return None
    number = last_plain_number(final)
    found = quick_judge(gold, number) if number is not None else None
    if found is None:
        return None
    found.reason += ", unmarked answer"
    found.answer = number
    return found


def _alternates(gold: str, answer: str, final: str) -> tuple[str, ...]:
    """For a reference with several parts, the response's boxes all together (`\\boxed{(3,3)} for (a)
    and \\boxed{(1,1)}`), when that differs from the extracted answer."""
    if final.count("\\boxed") + final.count("\\fbox") < 2:
        return ()
    ref = reference_answer(gold)
    if len(split_top_level(ref)) < 2 and " and " not in ref:
        return ()
    joined = ", ".join(all_boxed(final))
    return (joined,) if joined and joined != answer else ()


def _verdict(j: Judgement, answer: str | None) -> Verdict:
    return Verdict(j.passed, 1.0 if j.passed else 0.0, j.reason, j.code,
                   {"answer": answer if answer is not None else j.answer, "gold_parsed": j.gold_parsed,
                    "pred_parsed": j.pred_parsed})
