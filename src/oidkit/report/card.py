"""The dataset card: README.md in the Hugging Face format (YAML front matter, then prose and tables).

Everything in it comes from the report's stats, the curation funnel and the recipe, so it is regenerated,
not hand-edited, whenever the data changes; the limitations list is derived from what the recipe did
not do (e.g. no dedup step -> "not deduplicated").
"""

from __future__ import annotations

import yaml

from oidkit.core.markdown import markdown_table

# Hugging Face size categories: upper bounds and their labels.
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))
MIN_LANGUAGE_SHARE = 0.01

# Operators whose absence is worth a limitation line: (operator names that cover it, what is missing).
COVERAGE = (
    (("exact_dedup", "minhash_dedup", "dedup", "near_dedup", "semantic_dedup"),
     "It was not deduplicated: repeated conversations may remain."),
    (("pii", "scrub_pii"), "Personal data (emails, phone numbers, keys) was not scrubbed."),
    (("decontaminate", "decontam"), "It was not decontaminated against evaluation sets: "
     "scores on benchmarks may be inflated if their items appear here."),
    (("language",), "Languages were not filtered; the language table shows what is present."),
)


def size_category(records: int) -> str:
    for bound, label in SIZE_CATEGORIES:
        if records < bound:
            return label
    return "n>1B"


def card_languages(languages: list[dict]) -> list[str]:
    """Languages with at least 1% of the records (``unknown`` left out), most common first."""
    return [r["lang"] for r in languages if r["share"] >= MIN_LANGUAGE_SHARE and r["lang"] != "unknown"]


def limitations(stats: dict) -> list[str]:
    lines = []
    funnel = stats.get("funnel")
    if funnel:
        used = {str(step.get("op")) for step in funnel["steps"]} | {str(step.get("name")) for step in funnel["steps"]}
        lines += [text for names, text in COVERAGE if not used & set(names)]
    else:
        lines.append("No curation record was given with this data: how it was filtered is unknown.")
    formats = {r["format"] for r in stats["sources"]}
    if formats & {"sharegpt"}:
        lines.append("ShareGPT conversations were shared by users of a commercial chat assistant: answers are "
                     "model outputs whose terms of use may restrict training competing models, and user turns "
                     "may contain personal or unsafe content.")
    unknown = next((r for r in stats["languages"] if r["lang"] == "unknown"), None)
    if unknown:
        lines.append(f"{unknown['records']:,} records have no identified language (no user text, or too little "
                     "text for the curation language step).")
    lines.append(f"Token counts use {stats['tokenizer']}; a model's own tokenizer gives different numbers.")
    lines.append("Languages were identified automatically (py3langid, by the curation language step when it ran, "
                 "else on the first user turn) and can be wrong on short or mixed-language text.")
    return lines


def front_matter(stats: dict, *, title: str, license: str, data_files: list[str]) -> str:
    meta = {
        "pretty_name": title,
        "license": license,
        "language": card_languages(stats["languages"]),
        "size_categories": [size_category(stats["overview"]["records"])],
        "task_categories": ["text-generation"],
        "tags": ["instruction-tuning", "conversational", "oidkit"],
        "configs": [{"config_name": "default", "data_files": [
            {"split": "train", "path": data_files[0] if len(data_files) == 1 else data_files}]}],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def dataset_card(stats: dict, *, title: str, license: str, data_files: list[str], recipe: str | None) -> str:
    """README.md text of the dataset card; ``data_files`` are relative to its folder."""
    overview, tokens = stats["overview"], stats["tokens"]
    languages = ", ".join(f"{r['lang']} ({100 * r['share']:.1f}%)" for r in stats["languages"][:8])
    parts = [
        front_matter(stats, title=title, license=license, data_files=data_files),
        f"# {title}\n",
        f"{overview['records']:,} conversations ({overview['turns']:,} turns: {overview['user_turns']:,} user, "
        f"{overview['assistant_turns']:,} assistant) in {languages}. Median user turn "
        f"{tokens['user']['p50']:g} tokens, median assistant turn {tokens['assistant']['p50']:g} tokens "
        f"({stats['tokenizer']}). Figures and samples: `report.html`; every number: `stats.json`.\n",
        "## Dataset structure\n",
        "One JSON object per line: `id`, `messages` (a list of `{role, content}` with roles system, user, "
        "assistant, tool), `source` (file, position and format the record came from) and `meta` (every other "
        "field of the source row).\n",
        "## Sources\n",
        markdown_table(["file", "format", "records", "share"],
                       [[r["file"], r["format"], f"{r['records']:,}", f"{100 * r['share']:.1f}%"]
                        for r in stats["sources"]]) + "\n",
        "## Curation\n",
    ]
    funnel = stats.get("funnel")
    if recipe:
        parts.append("Recipe (`oid curate`):\n\n```yaml\n" + recipe.strip() + "\n```\n")
    if funnel:
        parts.append(f"Funnel: {number(funnel['input'])} records in, {number(funnel['output'])} kept.\n")
        parts.append(markdown_table(
            ["step", "in", "out", "dropped", "reasons"],
            [[s["name"], number(s["in"]), number(s["out"]), number(s["dropped"]),
              ", ".join(f"{code}: {n:,}" for code, n in (s.get("reasons") or {}).items())]
             for s in funnel["steps"]]) + "\n")
        notes = [f"- {s['name']}: {note}" for s in funnel["steps"] for note in s.get("notes") or []]
        if notes:
            parts.append("What curation could not do:\n\n" + "\n".join(notes) + "\n")
    if not recipe and not funnel:
        parts.append("No curation recipe or funnel was given.\n")
    parts += ["## Known limitations\n", "\n".join(f"- {line}" for line in limitations(stats)) + "\n"]
    return "\n".join(parts)


def number(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"
