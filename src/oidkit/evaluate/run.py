"""Run an evaluation suite on one model, or the same suite on two models side by side.

``evaluate_model`` loads a model once and runs every task file on it; ``compare_models`` runs the same
suite on two models (e.g. base and tuned), optionally asks a judge to compare their answers, and
``write_report`` writes ``report.json`` (everything, per example) and ``report.md`` (tables).
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oidkit.atomic import write_atomic
from oidkit.evaluate import scores
from oidkit.evaluate.choice import evaluate_choices
from oidkit.evaluate.intervals import compare_intervals, intervals_markdown
from oidkit.evaluate.judge import JudgeFn, pairwise
from oidkit.evaluate.perplexity import perplexity
from oidkit.evaluate.tasks import GenerationExample, Task

Progress = Callable[[str, int, int], None]  # (description, advance, total)


@dataclass
class EvalOptions:
    """What to run and how: generation length, batch size, which tokens perplexity scores."""

    max_new_tokens: int = 128
    batch_size: int = 4
    perplexity_tokens: str = "assistant"  # or "all"
    generate: bool = True  # records: also generate and score the last assistant turn
    chinese_rouge: str = "char"  # or "jieba"
    device: str = "cpu"  # or "auto" / "cuda" (models.device.resolve_device)


def generate_answers(model: Any, tokenizer: Any, conversations: list[list[dict]], *, max_new_tokens: int,
                     batch_size: int, progress: Callable[[int], None] | None = None) -> list[str]:
    """Greedy answers to chat conversations, batched; prompts longer than the context keep their end."""
    from oidkit.models.backends import GenerationRequest, LocalBackend

    backend = LocalBackend(getattr(model, "name_or_path", "model"), batch_size=batch_size, loaded=(model, tokenizer))
    params = {"temperature": 0.0, "max_tokens": max_new_tokens}
    generations = backend.generate([GenerationRequest(c, params) for c in conversations],
                                   progress=(lambda: progress(1)) if progress else None)
    return [g.text.strip() for g in generations]


def score_generations(kind: str, examples: list[GenerationExample], outputs: list[str], options: EvalOptions) -> dict:
    """Corpus metrics (the task kind's registered metrics, ``evaluate/scores``) and per-example scores."""
    rows = [{"id": e.id, "prompt": e.messages[-1]["content"], "reference": e.reference, "output": o}
            for e, o in zip(examples, outputs, strict=True)]
    return {"metrics": scores.score(kind, rows, options), "examples": rows}


def run_task(model: Any, tokenizer: Any, task: Task, options: EvalOptions, progress: Progress | None = None) -> dict:
    """Metrics and per-example outputs of one task on one model."""
    def advance(what: str, total: int) -> Callable[[int], None] | None:
        return (lambda n: progress(f"{task.name}: {what}", n, total)) if progress else None

    started = time.perf_counter()
    if task.kind == "choice":
        result = evaluate_choices(model, tokenizer, task.examples, advance("multiple choice", len(task.examples)))
    else:
        result = {"metrics": {}, "examples": []}
        if task.kind != "records" or options.generate:
            conversations = [e.messages for e in task.examples]
            outputs = generate_answers(model, tokenizer, conversations, max_new_tokens=options.max_new_tokens,
                                       batch_size=options.batch_size,
                                       progress=advance("generate", len(conversations)))
            result = score_generations(task.kind, task.examples, outputs, options)
        if task.kind == "records":
            ppl = perplexity(model, tokenizer, task.records, assistant_only=options.perplexity_tokens == "assistant",
                             batch_size=options.batch_size, progress=advance("perplexity", len(task.records)))
            result["metrics"] = {"perplexity": ppl["perplexity"], "scored_tokens": ppl["tokens"],
                                 **result["metrics"]}
            if not result["examples"]:
                result["examples"] = [{"id": r["id"]} for r in ppl["per_record"]]
            for row, scored in zip(result["examples"], ppl["per_record"], strict=True):
                row["perplexity"] = scored["perplexity"]
    result["kind"] = task.kind
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def evaluate_model(model_name: str, tasks: list[Task], options: EvalOptions | None = None,
                   progress: Progress | None = None) -> dict:
    """``{task name: result}`` for every task on one model (loaded once with ``oidkit.models.load_model``)."""
    from oidkit.models import load_model

    options = options or EvalOptions()
    model, tokenizer = load_model(model_name, device=options.device)
    results = {task.name: run_task(model, tokenizer, task, options, progress) for task in tasks}
    del model
    gc.collect()  # the second model of a comparison should not share memory with the first
    return results


def compare_models(model_a: str, model_b: str, tasks: list[Task], options: EvalOptions | None = None,
                   judge: JudgeFn | None = None, progress: Progress | None = None) -> dict:
    """The same suite on two models, plus judge win/tie/loss of A against B on generation tasks."""
    report: dict = {"models": [model_a, model_b], "results": {}}
    for letter, name in (("A", model_a), ("B", model_b)):
        # each model gets its own bars: shared labels would count both models' items against one model's total
        labelled = (lambda label, n, total, who=f"{letter} {Path(name).name or name}": progress(
            f"{who}: {label}", n, total)) if progress else None
        report["results"][name] = evaluate_model(name, tasks, options, labelled)
    report["intervals"] = compare_intervals(report)
    if judge is not None:
        report["judge"] = {}
        for task in tasks:
            first, second = report["results"][model_a][task.name], report["results"][model_b][task.name]
            if task.kind == "choice" or not first["examples"] or "output" not in first["examples"][0]:
                continue
            report["judge"][task.name] = pairwise([e["prompt"] for e in first["examples"]],
                                                  [e["output"] for e in first["examples"]],
                                                  [e["output"] for e in second["examples"]], judge)
    return report


def _cell(value: Any, width: int = 160) -> str:
    """A Markdown table cell: numbers rounded, text on one line, pipes escaped, long text cut."""
    if isinstance(value, float):
        return f"{value:.4f}"
    if value is None:
        return "-"
    text = str(value).replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def markdown_report(report: dict, with_examples: bool = True) -> str:
    """Metric tables (one column per model, with the difference for two) and per-example outputs side by side."""
    models = report["models"]
    results = [report["results"][m] for m in models]
    lines = [f"# Evaluation: {' vs '.join(models)}", ""]
    for task_name, first in results[0].items():
        lines += [f"## {task_name} ({first['kind']})", ""]
        header = ["metric", *models] + (["B - A"] if len(models) == 2 else [])
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for metric in first["metrics"]:
            values = [r[task_name]["metrics"].get(metric) for r in results]
            row = [metric, *map(_cell, values)]
            if len(values) == 2 and all(isinstance(v, (int, float)) for v in values):
                row.append(_cell(values[1] - values[0]))
            elif len(models) == 2:
                row.append("-")
            lines.append("| " + " | ".join(row) + " |")
        judged = report.get("judge", {}).get(task_name)
        if judged:
            s = judged["summary"]
            lines += ["", f"Judge, {models[0]} against {models[1]} (both orders): win {s['win']}, tie {s['tie']}, "
                          f"loss {s['loss']}; unreadable verdicts {s['unparsable_verdicts']}."]
        if with_examples and "output" in (first["examples"] or [{}])[0]:
            lines += ["", "| id | prompt | reference | " + " | ".join(models) + " |", "|" + "---|" * (3 + len(models))]
            for i, example in enumerate(first["examples"]):
                outputs = [_cell(r[task_name]["examples"][i]["output"]) for r in results]
                lines.append(f"| {_cell(example['id'])} | {_cell(example['prompt'])} | {_cell(example['reference'])} | "
                             + " | ".join(outputs) + " |")
        lines.append("")
    if report.get("intervals"):
        lines.append(intervals_markdown(report["intervals"], models))
    return "\n".join(lines)


def write_report(report: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    json_path, md_path = out / "report.json", out / "report.md"
    write_atomic(json_path, json.dumps(report, indent=2, ensure_ascii=False))
    write_atomic(md_path, markdown_report(report))
    return json_path, md_path
