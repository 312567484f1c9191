"""What instructions ask for: leading verb and its object (English), leading word (Chinese).

Self-Instruct (Wang et al., 2023, figure 2) parsed each instruction with the Berkeley parser and kept the
verb closest to the root with its first direct-object noun. Parser models cannot be downloaded here, so
this is a documented heuristic with the same output shape:

1. strip polite openers ("please", "can you", "I want you to", "help me", ...);
2. the verb is the first remaining word when it is in :data:`VERBS`, a lexicon of imperative verbs
   (instructions that open with anything else, e.g. a question word or a noun, get no verb);
3. its object is the first later word that is not a determiner, pronoun, number or adjective from
   :data:`SKIP_BEFORE_NOUN`; a preposition or conjunction there means "no direct object".

Chinese has no verb/noun split without a tagger, so the Chinese view is the first ``jieba`` word of the
instruction after polite openers (请, 帮我, ...), which in practice is the verb (写, 解释, 翻译, ...).
"""

from __future__ import annotations

import re

VERBS = frozenset("""
act add adjust advise analyse analyze annotate answer apply arrange assess assist assume brainstorm
build calculate categorise categorize change check choose cite clarify classify combine compare complete
compose compute condense construct continue convert correct count create critique debug decide define
delete derive describe design detect determine develop devise discuss divide draft draw edit elaborate
enumerate estimate evaluate examine expand explain explore extend extract fill find fix follow forecast
format formulate generate give group guess help identify illustrate imagine implement improve infer insert
interpret introduce invent judge label list look make match modify multiply name offer optimise optimize
organise organize outline paraphrase pick plan play predict prepare present pretend produce proofread
propose prove provide rank rate read recommend refactor rephrase replace reply research respond restate
return reverse review revise rewrite roleplay select send share shorten show simplify simulate solve sort
specify split state suggest summarise summarize tag teach tell test think transform translate try turn use
validate verify visualise visualize walk write
""".split())

SKIP_BEFORE_NOUN = frozenset("""
a an the this that these those my your our their his her its me us him them it you i some any all each
every another other few several many more most much one two three four five ten new short brief simple
detailed good great small big long quick step-by-step following given list top best main largest biggest
smallest different various important common popular basic full complete
""".split()) - {"list"}

NO_OBJECT = frozenset("""
about above across after against along among around as at before behind below between by down for from
if in into like near of off on onto out over since than that through to toward towards under until up
upon what when where whether which while who why with within without how and or but so
am is are was were be been being have has had do does did can could will would shall should may might must
i'm you're we're they're it's let's i'll youre im
""".split())

# Longest first so "can you please" is stripped before "can you".
_EN_OPENERS = sorted([
    "please", "kindly", "can you", "could you", "would you", "will you", "can you please", "could you please",
    "would you please", "i want you to", "i would like you to", "i'd like you to", "i need you to",
    "help me", "help me to", "please help me", "please help me to", "now", "ok", "okay", "so", "also",
], key=len, reverse=True)
_OPENER_RE = re.compile(r"^(?:(?:" + "|".join(re.escape(o) for o in _EN_OPENERS) + r")\b[\s,:]*)+")
_WORD_RE = re.compile(r"[a-z][a-z'\-]*")

ZH_OPENERS = ("请你", "请帮我", "请", "帮我", "麻烦你", "麻烦", "你能", "你可以", "能否", "可以")


def verb_object(instruction: str) -> tuple[str | None, str | None]:
    """``(verb, object)`` of an English instruction by the heuristic above; ``(None, None)`` without a verb."""
    head = _OPENER_RE.sub("", instruction[:300].strip().lower())
    words = _WORD_RE.findall(head.split("\n", 1)[0])
    if not words or words[0] not in VERBS:
        return None, None
    verb = words[0]
    for word in words[1:6]:
        if word in NO_OBJECT:
            return verb, None
        if word not in SKIP_BEFORE_NOUN:
            return verb, word
    return verb, None


_jieba = None


def first_word_zh(instruction: str) -> str | None:
    """First ``jieba`` word of a Chinese instruction after polite openers; ``None`` when there is none."""
    global _jieba
    if _jieba is None:
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)
        _jieba = jieba
    head = instruction[:100].strip()
    for opener in ZH_OPENERS:
        if head.startswith(opener):
            head = head[len(opener):]
            break
    for word in _jieba.cut(head):
        if word.strip() and any(ch.isalnum() for ch in word):
            return word
    return None
