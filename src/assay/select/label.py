"""Stage `label`: difficulty, quality and category labels from metadata or verified samples."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, field_validator

from assay.record import Record, Response, Verdict, checks_of, prompt_text
from assay.select import llm_labels
from assay.select import metadata as md
from assay.stage import Execution, stage
from assay.teacher.completion import Completion
from assay.teacher.llm import LLMCheck, Message, ParseError

Backend = Literal["heuristic", "empirical", "llm"]

LEVEL_KEYS = ("level",)
RATING_KEYS = ("rating", "cf_rating", "elo")
DIFFICULTY_KEYS = ("difficulty",)
CATEGORY_KEYS = ("category", "subject", "topic", "type", "problem_type")
QUALITY_KEYS = ("quality",)


def empirical_pass_rate(record: Record, checks: list[str]) -> tuple[int, int]:
    """(verified responses, passed ones): a response counts when it carries one of `checks`;
    it passed when every one of them it carries passed."""
    verified = passed = 0
    for resp in record.get("responses") or ():
        found = [c for k in checks if isinstance(c := (resp.get("checks") or {}).get(k), dict)]
        if not found:
            continue
        verified += 1
        passed += all(bool(c.get("passed")) for c in found)
    return verified, passed


@stage("label")
class Label(LLMCheck):
    """Difficulty (a float in [0, 1]), quality (1-5) and category labels.

    Backends, applied in the order given (a later one replaces what an earlier one found):
    `heuristic` reads source metadata: `meta.rating` (Codeforces), `meta.level` (MATH 1-5),
    `meta.difficulty` (APPS introductory / interview / competition, LeetCode Easy / Medium /
    Hard, CodeContests' enum), `meta.subject` / `meta.category` / `meta.type` for the category,
    `meta.tags`, and a quality score from visible defects of the prompt (too short, a figure that
    is referred to but missing, garbled characters). `empirical` sets difficulty = 1 - the pass
    rate of the record's responses under the verifiers' checks (run them with `drop: false`, or
    failed responses are gone before this stage sees them). `llm` asks the teacher (`teacher:`)
    for a category from `categories`, a difficulty 1-10 and a quality 1-5 as JSON, one request per
    record, and records the request's outcome in `checks.label`. Writes `labels.difficulty_from`
    with the evidence used."""

    level: ClassVar[Literal["response", "record"]] = "record"
    batch_size: ClassVar[int] = 64

    backends: list[Backend] = Field(["heuristic"], description="label sources, in order (later ones win): "
                                    "heuristic, empirical, llm")
    keep: list[str] = Field(["category"], description="labels kept when the record already has them "
                            "(a source's own category); others are recomputed")
    difficulty_names: dict[str, float] = Field(default_factory=dict, description="extra named difficulties "
                                               "-> [0, 1], merged over the built-in table (easy 0.2, medium 0.5, "
                                               "hard 0.8, introductory 0.2, interview 0.5, competition 0.8, ...)")
    level_scale: int = Field(5, ge=1, description="meta.level runs from 1 to this (MATH: 5)")
    rating_range: tuple[float, float] = Field((800, 3500), description="meta.rating mapped linearly onto [0, 1]")
    numeric_difficulty_scale: float = Field(10, gt=0, description="a numeric meta.difficulty of a non-code "
                                            "record runs from 1 to this (Omni-MATH: 10)")
    category_map: dict[str, str] = Field(default_factory=dict, description="rename categories after "
                                         "normalisation (lowercase, underscores), e.g. {precalculus: algebra}")
    normalise_category: bool = Field(True, description="write every category, also one the source set, "
                                     "lowercase with underscores (Intermediate Algebra -> intermediate_algebra), "
                                     "then renamed by category_map, so rules and quotas see one vocabulary")
    default_category: str | None = Field(None, description="category for records without one (e.g. the domain "
                                         "is used when set to 'domain')")
    pass_checks: list[str] = Field(["math_verify", "code_verify"], description="empirical: response checks that "
                                   "say whether a sample is correct")
    min_samples: int = Field(2, ge=1, description="empirical: verified responses needed to set a difficulty")
    categories: list[str] = Field(llm_labels.DEFAULT_CATEGORIES, description="llm: the categories the model "
                                  "chooses from")
    instructions: str | None = Field(None, description="llm: extra guidance appended to the labelling prompt")
    max_prompt_chars: int = Field(8000, ge=100, description="llm: longer problems are cut to this many characters")

    _counts: dict[str, Any] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any) -> None:
        super().model_post_init(context)
        if "llm" not in self.backends:
            # Without model calls the stage is plain CPU work: run it in the worker processes.
            execution: Execution = "pool"
            object.__setattr__(self, "execution", execution)

    @field_validator("backends")
    @classmethod
    def _some(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one backend: heuristic, empirical or llm")
        return value

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: list[str]) -> list[str]:
        out = [md.slug(c) for c in value if md.slug(c)]
        if not out:
            raise ValueError("give at least one category")
        return list(dict.fromkeys(out))

    @field_validator("difficulty_names", "category_map")
    @classmethod
    def _slug_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        return {md.slug(k): v for k, v in value.items()}

    @field_validator("rating_range")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] >= value[1]:
            raise ValueError("rating_range must be [low, high] with low < high")
        return value

    # ---- backends ---------------------------------------------------------------------------
    def heuristic(self, record: Record) -> dict[str, Any]:
        meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
        found: dict[str, Any] = {}
        difficulty = self._meta_difficulty(meta, record.get("domain"))
        if difficulty is not None:
            found["difficulty"], found["difficulty_from"] = difficulty
        cat = md.first_present(meta, CATEGORY_KEYS)
        category = str(cat[1]) if cat and isinstance(cat[1], (str, int)) else None
        if not category and self.default_category:
            category = record.get("domain") if self.default_category == "domain" else self.default_category
        if category:
            found["category"] = category
        tags = meta.get("tags")
        if isinstance(tags, list) and tags:
            found["tags"] = [str(t) for t in tags]
        q = md.first_present(meta, QUALITY_KEYS)
        if q is not None and isinstance(q[1], (int, float)) and not isinstance(q[1], bool):
            found["quality"] = q[1]
        else:
            flags = md.quality_flags(prompt_text(record))
            found["quality"] = md.heuristic_quality(flags)
            found["quality_flags"] = flags
        return found

    def _meta_difficulty(self, meta: dict[str, Any], domain: str | None) -> tuple[float, str] | None:
        hit = md.first_present(meta, RATING_KEYS)
        if hit and (d := md.rating_difficulty(hit[1], *self.rating_range)) is not None:
            return d, f"meta.{hit[0]}"
        hit = md.first_present(meta, LEVEL_KEYS)
        if hit and (d := md.level_difficulty(hit[1], self.level_scale)) is not None:
            return d, f"meta.{hit[0]}"
        hit = md.first_present(meta, DIFFICULTY_KEYS)
        if hit:
            names = {**md.NAMED_DIFFICULTY, **self.difficulty_names}
            d = md.named_difficulty(hit[1], names, domain, self.numeric_difficulty_scale)
            if d is not None:
                return d, f"meta.{hit[0]}"
        return None

    def empirical(self, record: Record) -> dict[str, Any]:
        verified, passed = empirical_pass_rate(record, self.pass_checks)
        if verified < self.min_samples:
            return {}
        rate = passed / verified
        return {"difficulty": round(1.0 - rate, 4), "difficulty_from": "pass_rate", "pass_rate": round(rate, 4),
                "samples": verified}

    # ---- llm backend (LLMCheck's prompt / parse) -------------------------------------------
    def uses_teacher(self) -> bool:
        return "llm" in self.backends

    def check_names(self) -> list[str]:
        return [self.key] if self.uses_teacher() else []

    def prompt(self, record: Record, response: Response | None) -> list[Message]:
        return llm_labels.messages(prompt_text(record), self.categories, self.instructions, self.max_prompt_chars)

    def schema(self, record: Record) -> dict[str, Any] | None:
        return llm_labels.schema(self.categories)

    def parse(self, record: Record, response: Response | None, completion: Completion) -> Verdict:
        try:
            found = llm_labels.parse(completion.get("content") or "", self.categories)
        except llm_labels.LabelParseError as exc:
            raise ParseError(str(exc)) from None
        reason = f"{found['category']}, difficulty {found['llm_difficulty']}/10, quality {found['quality']}/5"
        return Verdict(True, found["difficulty"], reason, details={"labels": found})

    # ---- stage ------------------------------------------------------------------------------
    def process_batch(self, records: list[Record]) -> None:
        for rec in records:
            self.process(rec)

    async def aprocess_batch(self, records: list[Record]) -> None:
        if not self.uses_teacher():
            self.process_batch(records)
            return
        self.client()
        verdicts = await asyncio.gather(*(self.evaluate(rec, None) for rec in records))
        for rec, verdict in zip(records, verdicts, strict=True):
            from_llm = verdict.details.pop("labels", None)
            checks_of(rec)[self.key] = verdict.to_dict()
            self.process(rec, from_llm or {})

    def process(self, record: Record, from_llm: dict[str, Any] | None = None) -> None:
        labels = record.get("labels")
        if not isinstance(labels, dict):
            labels = record["labels"] = {}
        kept = {k for k in self.keep if labels.get(k) not in (None, "")}
        found: dict[str, Any] = {}
        for backend in self.backends:
            if backend == "heuristic":
                found.update(self.heuristic(record))
            elif backend == "empirical":
                found.update(self.empirical(record))
            else:
                found.update(from_llm or {})
        for k, v in found.items():
            if k not in kept:
                labels[k] = v
        if self.normalise_category and isinstance(labels.get("category"), str) and labels["category"].strip():
            name = md.slug(labels["category"])
            labels["category"] = self.category_map.get(name, name)
        source = labels.get("difficulty_from") if "difficulty" in found else None
        key = source if isinstance(source, str) else "none"
        counts = self._counts.setdefault("difficulty_from", {})
        counts[key] = counts.get(key, 0) + 1

    def stats(self) -> dict[str, Any]:
        out, self._counts = self._counts, {}
        return {**super().stats(), **out}
