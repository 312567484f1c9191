"""Model answers and model judgements for existing records.

- ``respond``: fill the missing assistant turn of instruction-only records, or regenerate the last
  assistant turn of every record; a replaced answer is kept in ``meta.synth.previous_answer``.
- ``annotate``: a judge model scores each record against a rubric (default: AlpaGasus-style 1-5
  helpfulness/accuracy score with a one-line rationale, and whether the response follows the
  instruction) and stores the result in ``meta.score`` / ``meta.annotation``; curation filters on it.

In both, a record whose request failed for good is a ``request_failed`` reject (with the error in
``detail``); failures are not cached, so a rerun asks only for those again.
"""

from __future__ import annotations

import copy
import re
from collections import Counter

from oidkit.models.backends import GenerationRequest
from oidkit.records import make_reject
from oidkit.synth.self_instruct import SynthResult

DEFAULT_RUBRIC = """We would like to request your feedback on the performance of an AI assistant in response to the \
instruction and the given input displayed below.

{conversation}

Please rate the helpfulness and accuracy of the assistant's final response on a scale of 1 to 5, where a higher \
score indicates higher overall quality, and say whether the response follows the instruction. Answer in exactly \
this format:
Score: <1-5>
Follows instruction: <yes or no>
Rationale: <one line>"""


def conversation_text(messages: list[dict]) -> str:
    """A conversation as ``### Role:`` blocks, the way judge prompts show it."""
    return "\n\n".join(f"### {m['role'].capitalize()}:\n{m.get('content') or ''}" for m in messages)


def respond(backend, records: list[dict], *, regenerate: bool = False, params: dict | None = None) -> SynthResult:
    """Answer records whose conversation ends with a user turn (all records' last answer with ``regenerate``)."""
    params = params or {"temperature": 0.0, "max_tokens": 512}
    model_name = getattr(backend, "model", None) or getattr(backend, "model_name", "unknown")
    targets, prompts = [], []
    for i, record in enumerate(records):
        messages = record["messages"]
        if messages and messages[-1]["role"] == "user":
            targets.append((i, False))
            prompts.append(messages)
        elif regenerate and messages and messages[-1]["role"] == "assistant":
            targets.append((i, True))
            prompts.append(messages[:-1])
    generations = backend.generate([GenerationRequest(m, params) for m in prompts])
    out = [copy.deepcopy(r) for r in records]
    rejects, counts = [], Counter()
    for (i, replacing), generation in zip(targets, generations, strict=True):
        record = out[i]
        synth = record["meta"].setdefault("synth", {})
        if generation.error:
            counts["request_failed"] += 1
            rejects.append(make_reject(records[i], stage="synth", operator="respond", reason="request_failed",
                                       detail=generation.error))
            continue
        if not generation.text.strip():
            counts["empty_response"] += 1
            rejects.append(make_reject(records[i], stage="synth", operator="respond", reason="empty_response"))
            continue
        if replacing:
            synth["previous_answer"] = record["messages"].pop()["content"]
        record["messages"].append({"role": "assistant", "content": generation.text.strip()})
        synth.update({"responder": model_name, "response_params": params})
        counts["regenerated" if replacing else "answered"] += 1
    rejected = {r["record"]["id"] for r in rejects}
    kept = [r for r in out if r["id"] not in rejected]
    funnel = {"records": len(records), **counts, "kept": len(kept)}
    return SynthResult(kept, rejects, funnel, backend.usage.__dict__.copy())


def parse_judgement(text: str) -> dict:
    """``{"score", "follows_instruction", "rationale"}`` from a judge's answer; score ``None`` if absent."""
    score = re.search(r"(?:score|评分|分数)\s*[:：]\s*([1-5](?:\.\d+)?)", text, flags=re.I) or re.search(
        r"\b([1-5])\s*/\s*5", text)
    follows = re.search(r"(?:follows? (?:the )?instruction|遵循指令)\s*[:：]\s*(yes|no|是|否)", text, flags=re.I)
    rationale = re.search(r"(?:rationale|理由)\s*[:：]\s*(.+)", text, flags=re.I)
    return {
        "score": float(score.group(1)) if score else None,
        "follows_instruction": follows.group(1).lower() in ("yes", "是") if follows else None,
        "rationale": rationale.group(1).strip() if rationale else text.strip()[:300],
    }


def annotate(backend, records: list[dict], *, rubric: str = DEFAULT_RUBRIC, rubric_name: str = "default",
             params: dict | None = None) -> SynthResult:
    """Score every record with the judge; unparsable verdicts keep ``score: None`` and are counted, records
    whose request failed are rejects."""
    if "{conversation}" not in rubric:
        from oidkit.errors import ConfigError

        raise ConfigError("a rubric must contain the placeholder {conversation} where the record goes")
    params = params or {"temperature": 0.0, "max_tokens": 128}
    model_name = getattr(backend, "model", None) or getattr(backend, "model_name", "unknown")
    requests = [GenerationRequest([{"role": "user", "content": rubric.replace(
        "{conversation}", conversation_text(r["messages"]))}], params) for r in records]
    out, rejects, counts = [], [], Counter()
    for record, generation in zip(records, backend.generate(requests), strict=True):
        if generation.error:
            counts["request_failed"] += 1
            rejects.append(make_reject(record, stage="synth", operator="annotate", reason="request_failed",
                                       detail=generation.error))
            continue
        judgement = parse_judgement(generation.text)
        annotated = copy.deepcopy(record)
        annotated["meta"]["score"] = judgement["score"]
        annotated["meta"]["annotation"] = {**judgement, "judge": model_name, "rubric": rubric_name,
                                           "raw": generation.text}
        counts["scored" if judgement["score"] is not None else "unparsable"] += 1
        out.append(annotated)
    scores = [r["meta"]["score"] for r in out if r["meta"]["score"] is not None]
    funnel = {"records": len(records), **counts,
              "mean_score": round(sum(scores) / len(scores), 3) if scores else None}
    return SynthResult(out, rejects, funnel, backend.usage.__dict__.copy())

