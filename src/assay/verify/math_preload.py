"""Warm-up for the fork server of the `math-verify` worker pool.

The pool's fork server imports this module (its `preload`) with ASSAY_MATH_PRELOAD=1 in its
environment: it then parses a small corpus of typical answers, so that every worker forked from
it starts with math-verify loaded and the ANTLR LaTeX parser's prediction cache warm, instead of
paying that on its first items. Imported anywhere else (stage discovery), it does nothing.
"""

from __future__ import annotations

import os

ENV = "ASSAY_MATH_PRELOAD"

CORPUS = (
    ("\\frac{1}{2}", "\\sqrt{2}/2"), ("3\\sqrt{2}", "\\sqrt{18}"), ("\\frac{\\pi}{4}", "45^\\circ"),
    ("(1, 2)", "[1, 2)"), ("\\{1, 2, 3\\}", "3, 2, 1"), ("x^2 + 2x + 1", "(x+1)^2"), ("y = 2x + 3", "2x+3"),
    ("(-\\infty, 2] \\cup (3, \\infty)", "x \\le 2"), ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "1"),
    ("\\dfrac{3 + \\sqrt{5}}{2}", "2.618"), ("2^{10}", "1024"), ("\\log_2 8", "3"), ("e^{i\\pi}", "-1"),
    ("\\sin^2 x + \\cos^2 x", "1"), ("\\binom{5}{2}", "10"), ("10\\%", "0.1"), ("\\text{(C)}", "C"),
)


def warm() -> None:
    from assay.verify.math_compare import judge

    for gold, pred in CORPUS:
        try:
            judge(gold, pred)
        except Exception:  # a warm-up must never keep the pool from starting
            pass


if os.environ.get(ENV) == "1":
    warm()
