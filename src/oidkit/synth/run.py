"""One function per ``oid synth`` / ``oid annotate`` command: read inputs, pick a backend, run, write.

Every run writes to its output folder ``synth.jsonl`` (canonical records with provenance in
``meta.synth``), ``rejects.jsonl`` (what was dropped, with the reason), ``funnel.json`` (the run's
settings, the funnel and token usage) and keeps the response cache in ``cache/`` so that a repeated or
interrupted run resumes without paying twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from oidkit.atomic import write_atomic
from oidkit.core.progress import ProgressFn
from oidkit.errors import InputError, os_error_fix
from oidkit.io import read_records, write_jsonl
from oidkit.io.outputs import refuse_overwriting_inputs
from oidkit.models.backends import make_backend
from oidkit.records import first_user
from oidkit.synth.evol import EvolConfig, evolve
from oidkit.synth.respond import DEFAULT_RUBRIC, annotate, respond
from oidkit.synth.self_instruct import SelfInstructConfig, SynthResult, load_seed_tasks, self_instruct


def write_outputs(out_dir: str | Path, result: SynthResult, settings: dict) -> None:
    """The three files every synthesis run leaves behind."""
    out = Path(out_dir)
    write_jsonl(out / "synth.jsonl", result.records)
    write_jsonl(out / "rejects.jsonl", result.rejects)
    payload = {**settings, "funnel": result.funnel, "usage": result.usage}
    write_atomic(out / "funnel.json", json.dumps(payload, indent=2, ensure_ascii=False, default=str))


INSTRUCTION_ONLY = {"no_assistant_turn", "empty_assistant_turn"}


def _read(data: str | Path, allow: set[str] = frozenset()) -> tuple[list[dict], list[dict]]:
    """Records of ``data`` and the ingest rejects, which join the run's ``rejects.jsonl``: nothing is lost."""
    rejects: list[dict] = []
    records = list(read_records(data, on_reject=rejects.append, allow=allow))
    return records, rejects


def _backend(out_dir: str | Path, model: str, endpoint: str | None, concurrency: int, inputs: str | Path):
    """The generation backend, caching in ``OUT/cache``: the first thing a run writes, so the output folder is
    checked against the inputs here."""
    refuse_overwriting_inputs([], inputs, folders=[out_dir])
    options: dict[str, Any] = {"cache_dir": Path(out_dir) / "cache"}
    if endpoint:
        options["concurrency"] = concurrency
    return make_backend(model, endpoint, **options)


def run_self_instruct(seeds_path: str | Path, out_dir: str | Path, *, model: str, endpoint: str | None = None,
                      config: SelfInstructConfig | None = None, concurrency: int = 4,
                      progress: ProgressFn | None = None) -> SynthResult:
    """Self-Instruct from a seed-task file (Self-Instruct / BELLE JSONL shape)."""
    config = config or SelfInstructConfig()
    seeds = load_seed_tasks(seeds_path)  # before the model loads: a missing file fails at once
    result = self_instruct(_backend(out_dir, model, endpoint, concurrency, seeds_path), seeds, config, progress)
    settings = {"method": "self-instruct", "model": str(model), "endpoint": endpoint, "seeds": str(seeds_path),
                "config": {k: v for k, v in config.__dict__.items() if k != "blacklist"}}
    write_outputs(out_dir, result, settings)
    return result


def run_evol(data: str | Path, out_dir: str | Path, *, model: str, endpoint: str | None = None,
             config: EvolConfig | None = None, limit: int | None = None, concurrency: int = 4,
             progress: ProgressFn | None = None) -> SynthResult:
    """Evol-Instruct over the first user turn of each record of any supported dataset."""
    config = config or EvolConfig()
    records, ingest_rejects = _read(data, INSTRUCTION_ONLY)
    records = records[:limit]
    if not any(first_user(r).strip() for r in records):
        raise InputError("no record with a user turn to evolve", file=str(data),
                         hint="evol rewrites the first user turn of each record; check the input format")
    result = evolve(_backend(out_dir, model, endpoint, concurrency, data), records, config, progress)
    result.rejects[:0] = ingest_rejects
    write_outputs(out_dir, result, {"method": "evol-instruct", "model": str(model), "endpoint": endpoint,
                                    "input": str(data), "config": config.__dict__})
    return result


def run_respond(data: str | Path, out_dir: str | Path, *, model: str, endpoint: str | None = None,
                regenerate: bool = False, max_tokens: int = 512, concurrency: int = 4) -> SynthResult:
    """Answer instruction-only records (or regenerate every last answer) with a model."""
    records, ingest_rejects = _read(data, INSTRUCTION_ONLY)
    params = {"temperature": 0.0, "max_tokens": max_tokens}
    backend = _backend(out_dir, model, endpoint, concurrency, data)
    result = respond(backend, records, regenerate=regenerate, params=params)
    result.rejects[:0] = ingest_rejects
    write_outputs(out_dir, result, {"method": "respond", "model": str(model), "endpoint": endpoint,
                                    "input": str(data), "regenerate": regenerate})
    return result


def run_annotate(data: str | Path, out_dir: str | Path, *, model: str, endpoint: str | None = None,
                 rubric_file: str | Path | None = None, concurrency: int = 4) -> SynthResult:
    """Score every record with a judge model; scores land in ``meta.score`` for curation's ``min_score``."""
    rubric = read_rubric(rubric_file) if rubric_file else DEFAULT_RUBRIC
    name = Path(rubric_file).stem if rubric_file else "default"
    records, ingest_rejects = _read(data)
    backend = _backend(out_dir, model, endpoint, concurrency, data)
    result = annotate(backend, records, rubric=rubric, rubric_name=name)
    result.rejects[:0] = ingest_rejects
    write_outputs(out_dir, result, {"method": "annotate", "model": str(model), "endpoint": endpoint,
                                    "input": str(data), "rubric": name})
    return result


def read_rubric(path: str | Path) -> str:
    """The text of a rubric file, checked before any model is loaded or request sent."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot read the --rubric file: {error.strerror}", file=str(path),
                         hint=os_error_fix(error)) from None
    except UnicodeDecodeError as error:
        raise InputError("the --rubric file is not UTF-8 text", file=str(path), offset=error.start,
                         hint="save it as UTF-8") from None
