"""Realistic synthetic reasoning traces, for tests and benchmarks of the rules.

Long clean traces must pass the repetition rules, so they cannot be a paragraph repeated (that IS
a loop). These are built sentence by sentence from many templates that carry freshly computed
numbers (products, remainders, binomials, roots, partial sums), with varied connectives, so no
long n-gram recurs, the text compresses like ordinary prose, and the arithmetic in it is true.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

_OPENERS = [
    "First,", "Next,", "Now", "Then", "Notice that", "It follows that", "In other words,", "Alternatively,",
    "To double-check,", "On the other hand,", "Looking at it differently,", "So", "Hmm,", "Okay,", "Right,",
    "Let me see:", "Recall that", "By the same token,", "As a sanity check,", "Going back a step,",
    "Put differently,", "Meanwhile,", "Similarly,", "Here", "At this point", "For comparison,", "Also,",
    "Before moving on,", "If I am careful,", "Let me be precise:", "Rewriting this,", "Consequently,",
]
_NOUNS = ["rectangle", "triangle", "square", "grid", "sequence", "polygon", "set", "lattice", "board", "circle",
          "prism", "table", "graph", "tower", "necklace", "garden", "staircase", "ladder", "path", "chain"]
_ADJS = ["small", "larger", "second", "outer", "inner", "shaded", "remaining", "original", "smaller", "middle",
         "upper", "lower", "leftmost", "rightmost", "first", "last", "new", "modified", "reflected", "rotated"]
_NAMES = ["Alice", "Bob", "Carmen", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemal",
          "Lena", "Marta", "Nikhil", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Victor"]
_VARS = ["x", "y", "z", "n", "k", "m", "a", "b", "t", "p", "q", "r", "s", "u", "v", "w"]
_REFLECT = [
    "wait, I should make sure the constraint really allows that case",
    "that seems plausible, but I have not used every condition yet",
    "I might have mixed up which quantity is fixed here",
    "this matches the earlier estimate, which is reassuring",
    "the sign looks right because both factors are positive",
    "I need to be careful not to count the same arrangement twice",
    "maybe a cleaner approach exists, though this one works",
    "the boundary case deserves a separate look",
    "this is consistent with the small cases I tried",
    "nothing here depends on the order in which we pick them",
    "I am fairly confident about this step now",
    "let me not forget the condition stated at the very beginning",
    "the problem says distinct, so repeated values are excluded",
    "it would be easy to lose a factor of two here",
    "both ways of counting should agree, and they do",
]


def _sentences(rnd: random.Random) -> list[Callable[[], str]]:
    def product() -> str:
        a, b = rnd.randint(3, 999), rnd.randint(3, 99)
        return f"multiplying {a} by {b} gives {a * b}, since {a} times {b // 2 * 2} is {a * (b // 2 * 2)}" + (
            f" and one more {a} makes {a * b}." if b % 2 else ".")

    def linear() -> str:
        v, a, b, c = rnd.choice(_VARS), rnd.randint(2, 40), rnd.randint(1, 90), rnd.randint(1, 60)
        return (f"if \\( {v} = {c} \\), then \\( {a}{v} + {b} = {a * c + b} \\), which is "
                f"{'larger' if a * c + b > 500 else 'smaller'} than 500.")

    def area() -> str:
        w, h = rnd.randint(2, 80), rnd.randint(2, 80)
        return (f"the {rnd.choice(_ADJS)} {rnd.choice(_NOUNS)} measures {w} by {h}, so its area is {w * h} "
                f"and its perimeter is {2 * (w + h)}.")

    def modular() -> str:
        m = rnd.randint(3, 17)
        a, b = rnd.randint(10, 9999), rnd.randint(10, 9999)
        return (f"working modulo {m}, {a} leaves {a % m} and {b} leaves {b % m}, so their sum leaves "
                f"{(a + b) % m} and their product leaves {(a * b) % m}.")

    def binom() -> str:
        n = rnd.randint(5, 30)
        k = rnd.randint(2, min(6, n - 1))
        things = rnd.choice(_NOUNS)
        binom = f"\\( \\binom{{{n}}}{{{k}}} = {math.comb(n, k)} \\)"
        return f"choosing {k} of the {n} {things}s can be done in {binom} ways."

    def story() -> str:
        p, q = rnd.sample(_NAMES, 2)
        a, b = rnd.randint(2, 60), rnd.randint(2, 60)
        return (f"{p} starts with {a} tokens and {q} with {b}; after {p} hands over {min(a, b) // 2}, "
                f"{p} keeps {a - min(a, b) // 2} while {q} holds {b + min(a, b) // 2}.")

    def root() -> str:
        r1, r2 = rnd.randint(-20, 20), rnd.randint(-20, 20)
        return (f"the quadratic \\( t^2 - ({r1 + r2})t + ({r1 * r2}) = 0 \\) factors with roots {r1} and {r2}, "
                f"whose sum is {r1 + r2} and product is {r1 * r2}.")

    def partial_sum() -> str:
        n = rnd.randint(4, 120)
        return (f"the sum of the first {n} positive integers is {n * (n + 1) // 2}, and the sum of their squares "
                f"is {n * (n + 1) * (2 * n + 1) // 6}.")

    def gcd() -> str:
        a, b = rnd.randint(12, 5000), rnd.randint(12, 5000)
        g = math.gcd(a, b)
        return f"the greatest common divisor of {a} and {b} is {g}, so their least common multiple is {a * b // g}."

    def fraction() -> str:
        a, b = rnd.randint(1, 30), rnd.randint(2, 40)
        c, d = rnd.randint(1, 30), rnd.randint(2, 40)
        num, den = a * d + c * b, b * d
        g = math.gcd(num, den)
        return (f"adding \\( \\frac{{{a}}}{{{b}}} + \\frac{{{c}}}{{{d}}} \\) gives "
                f"\\( \\frac{{{num // g}}}{{{den // g}}} \\) after reducing by {g}.")

    def reflect() -> str:
        return rnd.choice(_REFLECT) + f" (case {rnd.randint(1, 40)} of the list)."

    def estimate() -> str:
        x = rnd.uniform(1, 500)
        return f"a rough estimate puts it near {x:.1f}, and its square root is about {math.sqrt(x):.3f}."

    return [product, linear, area, modular, binom, story, root, partial_sum, gcd, fraction, reflect, estimate]


def reasoning_text(words: int = 5000, seed: int = 0) -> str:
    """About `words` words of step-by-step reasoning with true arithmetic, in paragraphs."""
    rnd = random.Random(seed)
    makers = _sentences(rnd)
    paragraphs: list[str] = []
    count = 0
    while count < words:
        sentences = []
        for _ in range(rnd.randint(3, 7)):
            s = rnd.choice(makers)()
            opener = rnd.choice(_OPENERS)
            sentences.append(f"{opener} {s}")
            count += len(opener.split()) + len(s.split())
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def long_trace(words: int = 5000, seed: int = 0, answer: str = "42",
               markers: tuple[str, str] = ("<think>", "</think>")) -> str:
    """A clean response: a reasoning block of about `words` words that concludes with `answer`,
    then a short solution that states it in `\\boxed{}`."""
    body = reasoning_text(words, seed)
    open_, close = markers
    return (f"{open_}\n{body}\n\nPutting everything together, the answer is {answer}.\n{close}\n\n"
            f"Combining the cases above, the required value is \\( \\boxed{{{answer}}} \\).")
