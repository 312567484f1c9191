"""Per-item scores of application tasks, so that every comparison can carry a paired bootstrap interval.

- ``sentence_bleu`` / ``sentence_chrf``: sacrebleu's sentence scores (``zh`` tokenizer for Chinese
  references, BLEU with sacrebleu's default exponential smoothing).
- ``multi_reference_rouge``: ROUGE-1/2/L F of one output against each of several references, averaged
  over the references (DialogSum's test has three human summaries per dialogue).
- ``slot_mention``: the share of the slot values a reference assistant turn acts on that the output
  mentions (after NFKC, ignoring case, whitespace and punctuation), the task measure of a service assistant.
"""

from __future__ import annotations

import unicodedata

from oidkit.evaluate.metrics import bleu_tokenizer, rouge


def sentence_bleu(output: str, reference: str) -> float:
    """sacrebleu sentence BLEU (0-100), ``zh`` tokens when the reference is Chinese."""
    import sacrebleu

    return sacrebleu.sentence_bleu(output, [reference], tokenize=bleu_tokenizer([reference])).score


def sentence_chrf(output: str, reference: str) -> float:
    """sacrebleu sentence chrF (0-100)."""
    import sacrebleu

    return sacrebleu.sentence_chrf(output, [reference]).score


def multi_reference_rouge(output: str, references: list[str], chinese: str = "char") -> dict[str, float]:
    """ROUGE-1/2/L F-measure (0-1) of ``output`` against each reference, averaged over the references."""
    return rouge([output] * len(references), references, chinese)


def _folded(text: str) -> str:
    # spacing and punctuation are written freely around a value: "周一至周日 全天" is said "周一至周日全天",
    # a list of phones "a b" as "a、b", "(王府井店)" as "（王府井店）"
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if not ch.isspace() and not unicodedata.category(ch).startswith("P"))


def slot_mention(output: str, values: list[str]) -> float | None:
    """Share of ``values`` found in ``output`` (ignoring case, width, whitespace and punctuation); None when there
    are no values."""
    wanted = {folded for folded in map(_folded, values) if folded}
    if not wanted:
        return None
    said = _folded(output)
    return sum(value in said for value in wanted) / len(wanted)


def score_task(task: str, records: list[dict], outputs: list[str]) -> dict[str, dict]:
    """``{test set: {"per_item": {metric: [score per item]}, "corpus": {metric: value}}}`` of one system.

    ``task`` is ``translation`` (sentence BLEU/chrF per item; corpus BLEU/chrF per test set),
    ``summary`` (ROUGE-1/2/L against ``meta.references``) or ``service`` (response BLEU and ROUGE-L per
    assistant turn; ``slot_mention`` over the turns whose reference acts on slot values).
    """
    from oidkit.evaluate.metrics import bleu, chrf

    groups: dict[str, dict] = {}
    for item, output in zip(records, outputs, strict=True):
        reference = item["messages"][-1]["content"]
        meta = item.get("meta") or {}
        group = groups.setdefault(meta.get("test_set") or task, {"per_item": {}, "outputs": [], "references": []})
        scores = group["per_item"]
        group["outputs"].append(output)
        group["references"].append(reference)
        if task == "summary":
            for name, value in multi_reference_rouge(output, meta.get("references") or [reference]).items():
                scores.setdefault(name, []).append(value)
            continue
        scores.setdefault("bleu_sentence", []).append(sentence_bleu(output, reference))
        if task == "translation":
            scores.setdefault("chrf_sentence", []).append(sentence_chrf(output, reference))
        else:
            scores.setdefault("rougeL", []).append(multi_reference_rouge(output, [reference])["rougeL"])
            mentioned = slot_mention(output, meta.get("slot_values") or [])
            if mentioned is not None:
                scores.setdefault("slot_mention", []).append(mentioned)
    for group in groups.values():
        outputs, references = group.pop("outputs"), group.pop("references")
        group["corpus"] = {"bleu": bleu(outputs, references), "n": len(outputs)}
        if task == "translation":
            group["corpus"]["chrf"] = chrf(outputs, references)
    return groups
