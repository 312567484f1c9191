"""``run_app``: one application end to end, and the only module of ``apps`` that calls several stages.

source files -> task conversations (``apps/<name>.py``) -> curate (the recipe's cleaning steps, then
decontamination against this application's own test set and a seeded split) -> LoRA fine-tune -> export
-> generate on the test set with the base model, the base model prompted with solved examples (few-shot)
and the tuned model -> per-item scores -> paired bootstrap intervals -> ``OUT/report.md`` and ``report.json``.
"""

from __future__ import annotations

import copy
import gc
import importlib
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oidkit.apps import APPS, Built
from oidkit.atomic import write_atomic
from oidkit.core.app_prompt import app_prompt_file
from oidkit.core.config import PACKAGED, read_recipe, set_key, split_override
from oidkit.core.progress import LabelBars, ProgressFn
from oidkit.core.stats import paired_bootstrap
from oidkit.errors import ConfigError, InputError
from oidkit.io import write_jsonl

SYSTEMS = ("base", "few-shot", "tuned")
COMPARISONS = (("tuned", "base"), ("tuned", "few-shot"), ("few-shot", "base"))
RESAMPLES = 1000


def app_settings(name: str, overrides: list[str] = ()) -> dict:
    """The packaged recipe ``recipes/apps/<name>.yaml`` with ``key=value`` overrides applied."""
    if name not in APPS:
        raise ConfigError(f"unknown application {name!r}; choose one of {', '.join(APPS)}")
    settings = read_recipe(PACKAGED / "apps" / f"{name}.yaml")
    for override in overrides:
        parts, value = split_override(override, "train.train.max_steps=30")
        check_override(settings, parts, value, override)
        set_key(settings, parts, value, override)
        if parts[0] == "train" and len(parts) == 3:  # a value the user set holds with --quick too
            ((settings.get("train_quick") or {}).get(parts[1]) or {}).pop(parts[2], None)
    return settings


# Sections whose keys their own loaders check (the training config, the decontaminate operator's parameters)
CHECKED_LATER = ("train", "train_quick", "decontaminate")
CHOICES = {"dtype": ("auto", "bfloat16", "float32")}
# Counts where 0 means nothing to do at all (other counts, e.g. shots or a size, may be 0)
AT_LEAST_ONE = ("batch_size", "max_new_tokens")


def check_override(settings: dict, parts: list[str], value: Any, override: str) -> None:
    """Refuse, before any work, a key the recipe does not have or a value of another kind than the recipe's
    (a count must stay a whole number >= 0; ``null`` where the recipe has ``null``, meaning all)."""
    if parts[0] in CHECKED_LATER:
        return
    node: Any = settings
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            known = ", ".join(sorted(node)) if isinstance(node, dict) else "none (a value, not a section)"
            raise ConfigError(f"override {override!r}: no setting {'.'.join(parts[:depth + 1])!r}; "
                              f"keys here: {known}")
        node = node[part]
    if parts[-1] in CHOICES and value not in CHOICES[parts[-1]]:
        raise ConfigError(f"override {override!r}: {'.'.join(parts)} is one of {', '.join(CHOICES[parts[-1]])}, "
                          f"not {value!r}")
    counts = (isinstance(node, int) and not isinstance(node, bool)) or (node is None and parts[0] == "sizes")
    if counts:
        least = 1 if parts[-1] in AT_LEAST_ONE else 0
        if not (value is None and node is None) and not (isinstance(value, int) and not isinstance(value, bool)
                                                         and value >= least):
            raise ConfigError(f"override {override!r}: {'.'.join(parts)} is a count, a whole number >= {least}"
                              + (" or null (all)" if node is None else "") + f", not {value!r}")
    elif type(value) is not type(node) and not (isinstance(node, float) and isinstance(value, int)):
        raise ConfigError(f"override {override!r}: {'.'.join(parts)} takes a {type(node).__name__} "
                          f"like {node!r}, not {value!r}")


def list_apps() -> list[dict]:
    """Name, task, primary metric and sources of every packaged application."""
    return [{"app": name, **{k: settings[k] for k in ("task", "primary", "sources")}}
            for name, settings in ((name, app_settings(name)) for name in APPS)]


def run_app(name: str, *, quick: bool = False, out: str | Path | None = None, model: str | None = None,
            overrides: list[str] = (), log: Callable[[str], None] = print, console: Any = None) -> dict:
    """Run application ``name``; returns the report (also written to ``OUT/report.json`` and ``report.md``).
    With a rich ``console``, training and generation show progress bars on it."""
    from oidkit.curate.ops.decontam import shared_data_dir

    settings = app_settings(name, overrides)
    size = "quick" if quick else "full"
    out = Path(out or f"apps-out/{name}")
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    def stage(label: str, since: float) -> float:
        seconds[label] = round(time.perf_counter() - since, 1)
        log(f"{name}: {label} done in {seconds[label]:.0f}s")
        return time.perf_counter()

    train_config = training_config(settings, quick, out, model)  # its bad keys stop the run before any work
    data_dir = shared_data_dir()
    files = {key: data_dir / value for key, value in settings["sources"].items()}
    missing = [str(path) for path in files.values() if not path.exists()]
    if missing:
        raise InputError(f"{name}: {len(missing)} of its {len(files)} source files are not here: {', '.join(missing)}",
                         hint=f"the applications read the shared data folder's apps/ ({data_dir}); set "
                              "OIDKIT_SHARED_DATA to the folder holding apps/, or set sources.KEY=/absolute/path per "
                              "file (docs/apps.md)")
    module = importlib.import_module(f"oidkit.apps.{name}")
    built: Built = module.build(files, settings["sizes"][size], settings["seed"])
    paths = write_app_data(built, out / "data")
    if not built.train or not built.test:
        reasons = {s.name: dict(s.rejected) for s in built.sources}
        raise InputError(f"{name}: {len(built.train)} training conversations and {len(built.test)} test items "
                         f"could be read; rejects by source and reason: {reasons}", file=str(paths["rejects"]),
                         hint="the rejects file shows each dropped row with its reason")
    now = stage("ingest", started)

    curated = curate(settings, paths, out / "curated")
    now = stage("curate", now)

    from oidkit.models.export import export_run
    from oidkit.train.run import run_training

    training = run_training(train_config, console=console)
    model_dir = export_run(out / "train", out / "model", files=app_prompt_file(name, built.system_prompt))
    now = stage("train", now)

    train_records = read_split(out / "curated" / "splits" / "train.jsonl")
    generation = generation_settings(settings, train_config.train.device)
    with LabelBars(console, enabled=console is not None) as bars:
        outputs = generate_all(settings, generation, built.test, train_records, train_config.model.name,
                               str(model_dir), bars)
    now = stage("evaluate", now)

    report = build_report(name, settings, size, built, curated, training, generation, outputs, seconds, out)
    report["seconds"]["total"] = round(time.perf_counter() - started, 1)
    write_atomic(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False))
    write_atomic(out / "report.md", markdown(report))
    return report


def write_app_data(built: Built, folder: Path) -> dict[str, Path]:
    """Training conversations, test records, the test texts decontamination looks for, and ingest rejects."""
    paths = {"train": folder / "train_source.jsonl", "test": folder / "test.jsonl",
             "test_texts": folder / "test_texts.jsonl", "rejects": folder / "ingest_rejects.jsonl"}
    write_jsonl(paths["train"], built.train)
    write_jsonl(paths["test"], built.test)
    write_jsonl(paths["test_texts"], ({"id": r["id"], "text": "\n".join(m["content"] for m in r["messages"]
                                                                       if m["role"] != "system")}
                                      for r in built.test))
    write_jsonl(paths["rejects"], built.rejects)
    return paths


def curate(settings: dict, paths: dict[str, Path], out: Path) -> dict:
    """The recipe's cleaning steps, decontamination against the test texts, the seeded split."""
    from oidkit.curate.recipe import load_recipe
    from oidkit.curate.runner import run_recipe

    steps = [*settings["curate"],
             {"op": "decontaminate", **settings.get("decontaminate", {}),
              "benchmarks": [{"name": f"{settings['app']}_test", "path": str(paths["test_texts"]),
                              "fields": ["text"], "id_field": "id"}]},
             {"op": "split", "ratios": settings["split"], "seed": settings["seed"]}]
    recipe = load_recipe(base={"input": str(paths["train"]), "output": str(out), "steps": steps})
    return run_recipe(recipe, force=True)


def training_config(settings: dict, quick: bool, out: Path, model: str | None) -> Any:
    """The recipe's training section, pointed at the curated splits; ``--quick`` and ``model`` applied."""
    from oidkit.train.config import load_train_config

    tree = copy.deepcopy(settings["train"])
    tree["data"].update(train=str(out / "curated" / "splits" / "train.jsonl"),
                        validation=str(out / "curated" / "splits" / "validation.jsonl"))
    tree["train"]["output_dir"] = str(out / "train")
    for section, values in (settings.get("train_quick") or {}).items() if quick else ():
        tree.setdefault(section, {}).update(values)
    try:
        return load_train_config(None, [f"model.name={model}"] if model else [], base=tree)
    except ConfigError as error:  # its keys are one level down here: train.max_steps is train.train.max_steps
        raise ConfigError(f"{error}\nhint: an application's training config is its recipe's `train` section; "
                          "override a key in it as train.SECTION.KEY, e.g. train.train.max_steps=30 or "
                          "train.lora.r=8") from None


def read_split(path: Path) -> list[dict]:
    from oidkit.io import read_records

    return list(read_records(path)) if path.exists() else []


def few_shot(item: dict, train: list[dict], shots: int, seed: int) -> list[dict]:
    """The item's conversation after ``shots`` solved exchanges (first user turn and its answer) of training
    records of the same direction, fixed by ``seed``; without its reference turn."""
    direction = (item.get("meta") or {}).get("direction")
    pool = [r for r in train if (r.get("meta") or {}).get("direction") == direction]
    examples = random.Random(seed).sample(pool, min(shots, len(pool)))
    solved = []
    for example in examples:
        turns = [m for m in example["messages"] if m["role"] != "system"]
        solved += [{"role": m["role"], "content": m["content"]} for m in turns[:2]]
    system, rest = item["messages"][0], item["messages"][1:-1]
    return [system, *solved, *rest]


def generate_all(settings: dict, generation: dict, test: list[dict], train: list[dict], base: str, tuned: str,
                 progress: ProgressFn | None = None) -> dict[str, list]:
    """Greedy outputs of the three systems on every test item, on ``generation``'s device and dtype
    (``generation_settings``): base and few-shot share one loaded model."""
    from oidkit.evaluate.run import generate_answers
    from oidkit.models import load_model

    options = {"max_new_tokens": generation["max_new_tokens"], "batch_size": generation["batch_size"]}
    prompts = {"base": [[{"role": m["role"], "content": m["content"]} for m in r["messages"][:-1]] for r in test],
               "few-shot": [few_shot(r, train, generation["shots"], settings["seed"]) for r in test]}
    prompts["tuned"] = prompts["base"]
    outputs: dict[str, list] = {}
    for model_name, systems in ((base, ("base", "few-shot")), (tuned, ("tuned",))):
        model, tokenizer = load_model(model_name, dtype=generation["dtype"], device=generation["device"])
        for system in systems:
            advance = (lambda n, label=f"generate {system}": progress(label, n, len(test))) if progress else None
            outputs[system] = generate_answers(model, tokenizer, prompts[system], progress=advance, **options)
        del model
        gc.collect()
    return outputs


def generation_settings(settings: dict, device: str) -> dict:
    """How the three systems generate: on the training's device (``auto``: CUDA when torch sees a GPU), in
    the recipe's ``dtype`` (``auto``: ``models.device.fast_dtype`` there, bf16 where the hardware multiplies
    it natively, else fp32), with the recipe's shots, answer length and batch size."""
    from oidkit.models.device import fast_dtype, resolve_device

    device = resolve_device(device, option="train.device")
    return {"device": device, "dtype": fast_dtype(device) if settings["dtype"] == "auto" else settings["dtype"],
            "dtype_setting": settings["dtype"], **{k: settings[k] for k in ("shots", "max_new_tokens", "batch_size")}}


def build_report(name: str, settings: dict, size: str, built: Built, curated: dict, training: dict,
                 generation: dict, outputs: dict[str, list], seconds: dict, out: Path) -> dict:
    """Accounting, per-system scores, paired intervals for every metric, examples and times."""
    from oidkit.evaluate.task_metrics import score_task

    scores = {system: score_task(settings["task"], built.test, outputs[system]) for system in SYSTEMS}
    results: dict[str, dict] = {}
    for group, base_scores in scores["base"].items():
        rows = {}
        for metric in base_scores["per_item"]:
            per_system = {s: scores[s][group]["per_item"][metric] for s in SYSTEMS}
            rows[metric] = {"n": len(per_system["base"]),
                            **{s: sum(v) / max(len(v), 1) for s, v in per_system.items()},
                            **{f"{b} - {a}": paired_bootstrap(per_system[a], per_system[b], resamples=RESAMPLES,
                                                              seed=settings["seed"]) for b, a in COMPARISONS}}
        results[group] = {"metrics": rows, "corpus": {s: scores[s][group]["corpus"] for s in SYSTEMS}}
    primary = settings["primary"]
    verdict = results.get(primary["test_set"], {}).get("metrics", {}).get(primary["metric"])
    examples = [{"id": r["id"], "prompt": r["messages"][-2]["content"], "reference": r["messages"][-1]["content"],
                 **{s: outputs[s][i] for s in SYSTEMS}} for i, r in enumerate(built.test)]
    return {
        "app": name, "size": size, "out": str(out), "model": str(out / "model"), "primary": primary,
        "primary_result": verdict, "sources": [s.as_dict() for s in built.sources],
        "ingest": {"train_records": len(built.train), "test_items": len(built.test), "rejected": len(built.rejects)},
        "curate": {"in": curated["input"]["records"], "kept": curated["output"]["records"],
                   "splits": curated["output"]["splits"],
                   "operators": [{k: step[k] for k in ("name", "in", "out", "modified", "reasons")}
                                 for step in curated["operators"]]},
        "train": {"steps": training["steps"], "tokens": training["tokens"],
                  "final_train_loss": training["final_train_loss"], "best_eval_loss": training["best_eval_loss"]},
        "generation": generation,
        "results": results, "examples": examples, "seconds": seconds,
        "system_prompt": built.system_prompt, "resamples": RESAMPLES, "seed": settings["seed"],
    }


def _interval(cell: dict) -> str:
    mark = " *" if cell["excludes_zero"] else ""
    return f"{cell['diff']:+.4f} [{cell['low']:+.4f}, {cell['high']:+.4f}]{mark}"


def _one_line(text: str, width: int = 140) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def markdown(report: dict) -> str:
    """The report as Markdown: accounting, the three-system table with intervals, five examples, times."""
    lines = [f"# {report['app']} ({report['size']} size)", "",
             f"Tuned model: `{report['model']}` (answers with the application's system prompt under `oid serve`).", "",
             "## Data", "", "| source | rows read | records | rejected |", "|---|---|---|---|"]
    for source in report["sources"]:
        rejected = ", ".join(f"{k} {v}" for k, v in source["rejected"].items()) or "0"
        lines.append(f"| {source['source']} | {source['rows']} | {source['records']} | {rejected} |")
    c = report["curate"]
    lines += ["", f"Training conversations into curation: {c['in']}; test items: {report['ingest']['test_items']}.",
              "", "| step | in | out | repaired (modified) | dropped by reason |", "|---|---|---|---|---|"]
    for step in c["operators"]:
        reasons = ", ".join(f"{k} {v}" for k, v in step["reasons"].items()) or "-"
        lines.append(f"| {step['name']} | {step['in']} | {step['out']} | {step['modified']} | {reasons} |")
    lines += ["", f"Kept {c['kept']}; split {c['splits']}.", "",
              f"Training: {report['train']['steps']} steps, {report['train']['tokens']} tokens, final train loss "
              f"{report['train']['final_train_loss']:.4f}.", "",
              "Generation (greedy, the three systems alike): "
              + ", ".join(f"{k} {v}" for k, v in report["generation"].items() if k != "dtype_setting")
              + f" (recipe dtype: {report['generation']['dtype_setting']}).", "",
              f"## Results (mean per item; difference with a paired bootstrap 95% interval, {report['resamples']} "
              f"resamples, seed {report['seed']}; * = the interval excludes zero)", ""]
    for group, result in report["results"].items():
        lines += [f"### {group}", "", "| metric | n | base | few-shot | tuned | tuned - base | tuned - few-shot |"
                  " few-shot - base |", "|---|---|---|---|---|---|---|---|"]
        for metric, row in result["metrics"].items():
            lines.append(f"| {metric} | {row['n']} | {row['base']:.4f} | {row['few-shot']:.4f} | {row['tuned']:.4f} | "
                         + " | ".join(_interval(row[f"{b} - {a}"]) for b, a in COMPARISONS) + " |")
        for metric in result["corpus"]["base"]:
            if metric != "n":
                values = " | ".join(f"{result['corpus'][s][metric]:.2f}" for s in SYSTEMS)
                lines.append(f"| corpus {metric} | {result['corpus']['base']['n']} | {values} | - | - | - |")
        lines.append("")
    lines += ["## Five examples", "", "| id | input (last turn) | reference | base | few-shot | tuned |",
              "|---|---|---|---|---|---|"]
    for example in report["examples"][:5]:
        lines.append("| " + " | ".join(_one_line(example[k]) for k in ("id", "prompt", "reference", *SYSTEMS)) + " |")
    lines += ["", "## Time", "", ", ".join(f"{k} {v:.0f}s" for k, v in report["seconds"].items()), ""]
    return "\n".join(lines)
