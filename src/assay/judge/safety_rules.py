"""The fast rule backend of `safety`: word lists and regular expressions per harm category.

The defaults are narrow on purpose (requests for real help with serious harm), so that maths,
code and science data ("kill the process", "the bomb in the puzzle", "poisson") pass; extend
them with `words:` / `patterns:` or replace them with `defaults: false`. A response that refuses
is not flagged for naming the harm it refuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HOWTO = (r"(?:how (?:do|can|could|would|should) (?:i|you|we|one)|how to|ways? to|steps? to|"
          r"instructions? (?:for|to|on)|guide (?:to|for|on)|teach me to|help me|tell me how to|explain how to|"
          r"recipe for)")
_MAKE = r"(?:make|build|create|construct|assemble|synthesi[sz]e|produce|manufacture|cook|brew|3d[- ]print|obtain|buy)"
# "bomb" but not the bomb shelter of a physics problem or a bomb calorimeter
_BOMB = r"bombs?(?!\s*(?:shelters?|calorimeters?|squads?|disposal|detectors?|-?proof|threats?))"

DEFAULT_PATTERNS: dict[str, list[str]] = {
    "weapons": [
        _HOWTO + r"\W+(?:\w+\W+){0,3}?" + _MAKE + r"\W+(?:\w+\W+){0,4}?(?:" + _BOMB
        + r"|explosives?|ieds?|pipe ?bombs?|"
        r"molotov|napalm|thermite charges?|detonators?|grenades?|nerve agents?|sarin|vx gas|ricin|anthrax|"
        r"bio ?weapons?|chemical weapons?|dirty bombs?|untraceable (?:guns?|firearms?)|ghost guns?|silencers?)\b",
        r"\b(?:untraceable|unregistered) (?:gun|firearm|weapon)s? (?:at home|yourself|without)\b",
    ],
    "drugs": [
        _HOWTO + r"\W+(?:\w+\W+){0,3}?" + _MAKE + r"\W+(?:\w+\W+){0,3}?(?:meth(?:amphetamine)?|crystal meth|"
        r"fentanyl|heroin|crack cocaine|cocaine|lsd|mdma|ghb)\b",
    ],
    "malware": [
        _HOWTO + r"\W+(?:\w+\W+){0,3}?(?:write|make|build|create|code|develop|deploy|spread)\W+(?:\w+\W+){0,3}?"
        r"(?:ransomware|keyloggers?|botnets?|malware|computer virus(?:es)?|trojans?|rootkits?|spyware|worms?"
        r" that spreads?)\b",
        _HOWTO + r"\W+(?:\w+\W+){0,3}?(?:hack|break) into\W+(?:\w+\W+){0,3}?(?:someone(?:'s)?|my (?:ex|wife|"
        r"husband|boss|neighbou?r)(?:'s)?|a bank|an? (?:email|instagram|facebook|account))",
        r"\bsteal (?:someone'?s? )?(?:passwords?|credit card (?:numbers?|details)|identit(?:y|ies))\b",
    ],
    "violence": [
        _HOWTO + r"\W+(?:\w+\W+){0,2}?(?:kill|murder|poison|strangle|stab|torture|kidnap)\W+(?:my |a |an |the )?"
        r"(?:someone|somebody|person|people|him|her|them|wife|husband|boss|neighbou?r|child|kid|baby|family|"
        r"classmates?|coworkers?|teacher|ex)\b(?!'?s?\s*(?:process|processes|thread|threads|task|job|node|pid|"
        r"session|server|program|window|app|query))",
        r"\b(?:get away with|cover up|hide) (?:a )?(?:murder|killing)\b",
        r"\bdispose of (?:a|the) (?:dead )?body\b",
    ],
    "self_harm": [
        _HOWTO + r"\W+(?:\w+\W+){0,3}?(?:kill myself|commit suicide|end my (?:own )?life|hurt myself|"
        r"cut myself|self[- ]harm)\b",
        r"\b(?:painless|easiest|quickest|best) (?:way|method)s? (?:to|of) (?:die|suicide|kill(?:ing)? myself)\b",
        r"\byou should (?:kill yourself|end your life|hurt yourself)\b",
    ],
    "sexual_minors": [
        r"\b(?:sex(?:ual)?|nude|naked|erotic|porn\w*)\W+(?:\w+\W+){0,4}?(?:child(?:ren)?|minors?|kids?|"
        r"underage|preteens?|\d{1,2}[- ]year[- ]olds?)\b",
        r"\b(?:child(?:ren)?|minors?|kids?|underage|preteens?)\W+(?:\w+\W+){0,4}?(?:sex(?:ual)?|nude|naked|"
        r"erotic|porn\w*)\b",
    ],
    "hate": [
        r"\b(?:kill|exterminate|eradicate|gas|deport) all (?:the )?(?:jews|muslims|christians|blacks|whites|"
        r"asians|gays|immigrants|arabs|mexicans|women|men)\b",
        r"\b(?:jews|muslims|blacks|gays|immigrants|arabs|women) (?:are|were) (?:vermin|subhuman|animals|a disease)\b",
    ],
}

DEFAULT_WORDS: dict[str, list[str]] = {
    "sexual_minors": ["child pornography", "child porn", "cp links", "lolicon", "shotacon"],
    "weapons": ["how to make a bomb", "build a pipe bomb", "make napalm"],
    "drugs": ["cook meth", "synthesize methamphetamine", "synthesize fentanyl"],
}

# A response that starts by refusing (or says it cannot help) names the harm without giving it.
REFUSAL = re.compile(
    r"\b(?:i (?:can(?:no|')t|cannot|won'?t|will not|am not able to|'m not able to|am unable to|'m unable to|"
    r"must decline|have to decline)|i'm sorry,? but|sorry,? (?:but )?i can(?:no|')t|as an ai\b|"
    r"i (?:do not|don't) (?:provide|help|assist)|not (?:able|going) to (?:help|assist|provide))",
    re.IGNORECASE)


@dataclass
class Hit:
    category: str
    match: str


class RuleSet:
    """One compiled alternation per category: linear scans, no catastrophic backtracking
    (the patterns bound their gaps)."""

    def __init__(self, words: dict[str, list[str]], patterns: dict[str, list[str]]):
        self.rules: list[tuple[str, re.Pattern[str]]] = []
        for cat in sorted(set(words) | set(patterns)):
            alts = [r"\b" + re.escape(w.strip().lower()).replace(r"\ ", r"\s+") + r"\b"
                    for w in words.get(cat, []) if w.strip()]
            alts += [f"(?:{p})" for p in patterns.get(cat, [])]
            if alts:
                self.rules.append((cat, re.compile("|".join(alts), re.IGNORECASE)))

    def find(self, text: str) -> Hit | None:
        for cat, rx in self.rules:
            m = rx.search(text)
            if m:
                return Hit(cat, m.group(0)[:80])
        return None


def is_refusal(text: str, window: int = 400) -> bool:
    """True when the text (its final part, in the first `window` characters) refuses."""
    return bool(REFUSAL.search(text[:window]))
