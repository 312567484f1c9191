"""The model card ``oid export`` writes: README.md with Hugging Face YAML metadata, then prose and tables.

Everything in it comes from the run folder (``config.yaml``, ``summary.json``, ``data.json``), the model
registry (the hub id and license of the base model), the curated data's card (``oid report`` writes it)
and, when given, an ``oid eval`` report. ``base_model`` is always a hub id, never a local path: when only
a local folder is known it is left out and the card says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from oidkit.core.markdown import markdown_table
from oidkit.errors import ConfigError
from oidkit.models.registry import hub_id, known_model


def read_card_data(readme: Path) -> dict:
    """The YAML metadata of a README.md card (``{}`` when it has none)."""
    from huggingface_hub import RepoCard

    try:
        return RepoCard.load(readme).data.to_dict()
    except (ValueError, yaml.YAMLError) as error:
        raise ConfigError(f"{readme}: not a readable card ({error}); fix its YAML front matter or pass another "
                          "--data-card") from error


def data_cards(train: str | list[str], data_card: str | Path | None) -> list[tuple[Path, dict]]:
    """``(path, metadata)`` of the data's card: the one given, else a README.md beside each training file."""
    if data_card:
        return [(Path(data_card), read_card_data(Path(data_card)))]
    folders = dict.fromkeys(Path(p).parent for p in ([train] if isinstance(train, str) else train))
    return [(f / "README.md", read_card_data(f / "README.md")) for f in folders if (f / "README.md").is_file()]


def base_license(model_name: str) -> str | None:
    """The base model's license: the registry's, else the one in the base folder's own card."""
    known = known_model(model_name)
    if known:
        return known.license
    readme = Path(model_name).expanduser() / "README.md"
    return read_card_data(readme).get("license") if readme.is_file() else None


def eval_table(report_path: Path) -> str:
    """Markdown tables of an ``oid eval`` report.json: one per task, one column per model."""
    path = report_path / "report.json" if report_path.is_dir() else report_path
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        models, results = report["models"], report["results"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{path}: not an `oid eval` report.json ({error}); pass the report.json (or its folder) "
                          "that oid eval -o wrote") from error
    parts = []
    for task, first in results[models[0]].items():
        rows = [[metric, *(cell(results[m][task]["metrics"].get(metric)) for m in models)]
                for metric in first["metrics"]]
        parts.append(f"**{task}** ({first['kind']}):\n\n" + markdown_table(["metric", *models], rows))
    return "\n\n".join(parts)


def cell(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-" if value is None else str(value)


def training_rows(config: dict, summary: dict) -> list[list]:
    data, optim, loop = config["data"], config["optim"], config["train"]
    rows = [["method", config["method"]]]
    if config["method"] == "lora":
        lora = config["lora"]
        rows.append(["LoRA", f"r={lora['r']}, alpha={lora['alpha']}, dropout={lora['dropout']}, "
                             f"modules={lora['target_modules']}"])
    rows += [
        ["optimizer", f"AdamW, lr={optim['lr']}, {optim['schedule']} schedule, warmup {optim['warmup_steps']} steps, "
                      f"weight decay {optim['weight_decay']}"],
        ["batch", f"{loop['batch_size']} sequences x {loop['grad_accum']} accumulation steps"],
        ["steps", f"{summary.get('steps', '?')} of max {loop['max_steps']}"
                  + (" (stopped early)" if summary.get("stopped_early") else "")],
        ["tokens trained on", f"{summary.get('tokens', '?'):,}" if summary.get("tokens") else "?"],
    ]
    if data.get("kind") == "text":  # model.init=scratch: a new Llama of this shape, plain text
        shape = config["model"]
        rows += [
            ["model", f"new Llama, {summary.get('parameters', '?')} parameters: dim {shape['dim']}, "
                      f"{shape['n_layers']} layers, {shape['n_heads']} heads ({shape['n_kv_heads']} key/value), "
                      f"intermediate {shape['intermediate_size']}"],
            ["tokenizer", config["tokenizer"]],
            ["sequence length", f"{shape['max_seq_len']} (texts cut into chunks of this many tokens, packed)"],
            ["loss on", "every token (next-token prediction on plain text)"],
        ]
    else:
        rows += [
            ["sequence length", f"{data['max_seq_len']} ({'packed' if data['packing'] else 'one record per row'}, "
                                f"overlong records: {data['overlong']})"],
            ["loss on", f"{data['train_on']} turns; reasoning: {data.get('reasoning', 'train')}"],
            ["chat template", data.get("chat_template") or "the base model's own"],
        ]
    rows.append(["precision, seed", f"{loop['precision']}, {loop['seed']}"])
    for key, label in (("final_train_loss", "final train loss"), ("best_eval_loss", "best eval loss")):
        if summary.get(key) is not None:
            rows.append([label, f"{summary[key]:.4f}"])
    return rows


def usage(out_dir: Path, base: str | None, adapter: bool) -> str:
    if adapter:
        return ("```python\nfrom peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n\n"
                f"model = AutoPeftModelForCausalLM.from_pretrained({str(out_dir)!r})  # loads {base or 'the base'}"
                f" too\ntokenizer = AutoTokenizer.from_pretrained({str(out_dir)!r})\n```\n")
    return ("```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f"model = AutoModelForCausalLM.from_pretrained({str(out_dir)!r})\n"
            f"tokenizer = AutoTokenizer.from_pretrained({str(out_dir)!r})\n```\n\n"
            f"Or serve it: `oid serve {out_dir}`.\n")


def model_card(run_dir: str | Path, out_dir: str | Path, *, adapter: bool, base_model: str | None = None,
               license: str | None = None, eval_report: str | Path | None = None,
               data_card: str | Path | None = None) -> str:
    """README.md text of the model card for the export of ``run_dir`` into ``out_dir``."""
    from huggingface_hub import ModelCardData

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    summary_path, data_path = run_dir / "summary.json", run_dir / "data.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    counts = json.loads(data_path.read_text()) if data_path.exists() else {}
    scratch = config["model"].get("init") == "scratch"  # a new model: no base model to name or take a license from
    base_name = None if scratch else config["model"]["name"]
    base = None if scratch else base_model or hub_id(base_name)
    license = license or (None if scratch else base_license(base_name))
    cards = data_cards(config["data"]["train"], data_card)
    datasets = [meta.get("pretty_name") or path.parent.name for path, meta in cards]
    metadata = ModelCardData(
        base_model=base, library_name="peft" if adapter else "transformers", license=license,
        datasets=datasets or None, pipeline_tag="text-generation",
        tags=["oidkit", "pretraining" if scratch else "sft", config["method"],
              *(["base_model:adapter:" + base] if adapter and base else [])])
    title = out_dir.resolve().name
    what = "A LoRA adapter" if adapter else ("A merged LoRA fine-tune" if config["method"] == "lora"
                                            else "A full fine-tune")
    origin = (f"`{base}`" if base else
              f"a local model (`{base_name}`; no hub id is known for it: pass `oid export --base-model ORG/NAME`)")
    made = ("A Llama trained from scratch on plain text with oidkit (`oid pretrain`); not instruction-tuned.\n"
            if scratch else f"{what} of {origin}, instruction-tuned with oidkit (`oid train`).\n")
    train = counts.get("train") or {}
    parts = [
        f"---\n{metadata.to_yaml()}\n---\n",
        f"# {title}\n",
        made,
        "## Use\n",
        usage(out_dir, base, adapter),
        "## Training data\n",
    ]
    files = config["data"]["train"]
    parts.append("Files: " + ", ".join(f"`{f}`" for f in ([files] if isinstance(files, str) else files))
                 + (f". {counts.get('train_examples', '?'):,} examples trained on, "
                    f"{counts.get('eval_examples', 0):,} held out; of {train.get('records', '?'):,} records "
                    f"read, {train.get('dropped', 0):,} were dropped as too long for the sequence length."
                    if train else ".") + "\n")
    for path, meta in cards:
        parts.append(f"Data card: `{path}` ({meta.get('pretty_name', path.parent.name)}, license "
                     f"{meta.get('license', 'not stated')}); it lists the sources, the curation steps and the "
                     "data's known limitations.\n")
    if not cards:
        parts.append("No data card was found beside the training files (write one with `oid report`, or pass "
                     "`--data-card`): how the data was curated is not recorded here.\n")
    parts += ["## Training settings\n", markdown_table(["setting", "value"], training_rows(config, summary)) + "\n"]
    if eval_report:
        parts += ["## Evaluation\n", f"From `oid eval` ({Path(eval_report)}):\n", eval_table(Path(eval_report)) + "\n"]
    else:
        parts += ["## Evaluation\n", "Not evaluated in this card: pass `--eval-report` with an `oid eval` report.\n"]
    parts += ["## Limitations\n",
              ("A small model trained from scratch: it continues text like its training data, it does not follow "
               "instructions, and it makes things up." if scratch else
               "A small instruction-tuned model: it makes things up, and it inherits the limitations of its base "
               "model and of the training data (see the data card).")
              + ("" if license else " No license is set" + ("" if scratch else " and none is known for the base model")
                 + ": set one before sharing.") + "\n"]
    return "\n".join(parts)
