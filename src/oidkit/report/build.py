"""``oid report``: read the data (and the curation outputs), write report.html, figures, stats.json, README.md."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import orjson

from oidkit.atomic import link_or_copy, write_atomic
from oidkit.errors import InputError
from oidkit.io import read_jsonl, read_records
from oidkit.io.files import expand_paths
from oidkit.io.outputs import refuse_overwriting_inputs
from oidkit.report.card import dataset_card
from oidkit.report.html import render_html
from oidkit.report.stats import collect, curation_funnel, reject_summary
from oidkit.report.tokens import WHITESPACE_CJK, token_counter

WHITESPACE_RULE = ("Tokens are counted without a model: each CJK character (Chinese, Japanese kana, Korean "
                   "hangul) is one token, the rest of the text counts by whitespace-separated words.")


@dataclass
class ReportInputs:
    """The files a report reads: the data, and optionally what curation left beside it."""

    data: list[Path]
    rejects: list[Path] = field(default_factory=list)
    curate_stats: Path | None = None
    recipe: Path | None = None


def find_inputs(data: str | Path, rejects: str | Path | None = None, curate_stats: str | Path | None = None,
                recipe: str | Path | None = None) -> ReportInputs:
    """Resolve the inputs; an ``oid curate`` output folder supplies kept data, rejects, stats and recipe."""
    data = Path(data)
    if not data.exists():
        raise InputError("data not found", file=str(data), hint="pass a records file, a folder, or the folder "
                         "`oid curate` wrote (with kept.jsonl, rejects.jsonl, stats.json)")
    inputs = ReportInputs(data=[data])
    if data.is_dir() and (data / "stats.json").exists() and (data / "recipe.yaml").exists():
        found_stats = orjson.loads((data / "stats.json").read_bytes())
        output = found_stats.get("output", {})
        inputs.data = [Path(p) for p in output.get("paths", [])] or [data / "kept.jsonl"]
        reject_files = [Path(p) for p in output.get("rejects_paths", [])] or [data / "rejects.jsonl"]  # Ray: shards
        inputs.rejects = [path for path in [data / "ingest_rejects.jsonl", *reject_files] if path.exists()]
        inputs.curate_stats, inputs.recipe = data / "stats.json", data / "recipe.yaml"
    if rejects:
        inputs.rejects = [Path(rejects)]
    if curate_stats:
        inputs.curate_stats = Path(curate_stats)
    if recipe:
        inputs.recipe = Path(recipe)
    for path in [*inputs.data, *inputs.rejects, *filter(None, [inputs.curate_stats, inputs.recipe])]:
        if not path.exists():
            raise InputError("file not found", file=str(path), hint="check the path, or leave the option out")
    return inputs


def load_curate_stats(path: Path | None) -> dict | None:
    if path is None:
        return None
    try:
        stats = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise InputError(f"not valid JSON: {e}", file=str(path),
                         hint="pass the stats.json `oid curate` wrote") from None
    if not isinstance(stats, dict) or not isinstance(stats.get("operators"), list):
        raise InputError("expected curation stats (an object with an `operators` list), found something else",
                         file=str(path), hint="pass the stats.json `oid curate` wrote, or leave --stats out")
    return stats


def kept_count_warnings(curation: dict | None, stats: dict, unreadable: list[dict]) -> list[str]:
    """A warning when the data holds another number of records than the curation stats say it kept."""
    claimed, found = (curation or {}).get("output", {}).get("records"), stats["overview"]["records"]
    if claimed is None or claimed == found:
        return []
    why = (f" ({len(unreadable):,} rows of it were rejected on read: see the ingest rejects)" if unreadable
           else ": are they from the same run?")
    return [f"the curation stats say {claimed:,} records were kept, but the data has {found:,}{why}"]


def link_data(data: list[Path], out: Path) -> list[str]:
    """Put the data files in ``out/data/`` so that the card's folder loads with ``datasets.load_dataset(out)``;
    returns their paths relative to ``out``.

    A hard link costs no space and leaves the original as it is (a copy where links cannot cross file systems).
    """
    folder = out / "data"
    files = [f for f in expand_paths(data) if f.is_file()]
    names = [f.name for f in files]
    linked = []
    for i, source in enumerate(files):
        target = folder / (source.name if names.count(source.name) == 1 else f"{i:03d}-{source.name}")
        if target.exists() and target.samefile(source):
            linked.append(target.relative_to(out).as_posix())
            continue
        folder.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        link_or_copy(source, target)
        linked.append(target.relative_to(out).as_posix())
    return linked


def iter_rejects(paths: list[Path]) -> Iterator[dict]:
    """Rows of rejects files; anything but a reject object is a user error naming file and line."""
    for path in paths:
        for line, row in enumerate(read_jsonl(path), start=1):
            if not isinstance(row, dict) or "reason" not in row:
                raise InputError(f"expected a reject object with a `reason`, found {str(row)[:80]!r}", file=str(path),
                                 line=line, hint="pass the rejects.jsonl that `oid curate` or `oid convert` wrote")
            yield row


def build_report(
    data: str | Path,
    out_dir: str | Path,
    *,
    rejects: str | Path | None = None,
    curate_stats: str | Path | None = None,
    recipe: str | Path | None = None,
    tokenizer: str | None = None,
    format: str | None = None,
    salvage: bool = False,
    title: str | None = None,
    license: str = "other",
    sample_size: int = 8,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Write ``report.html``, ``figures/*.png``, ``stats.json`` and ``README.md`` to ``out_dir``; return the stats.

    Rows of the data that cannot be read as records (``format``/``salvage`` as in ``read_records``) are
    counted with the rejects, stage ``ingest``. ``progress(bytes)`` receives the data bytes read so far.
    """
    from oidkit.report.plots import all_figures  # matplotlib costs ~0.5 s to import: only when reporting

    inputs = find_inputs(data, rejects, curate_stats, recipe)
    out = Path(out_dir)
    read = [*inputs.data, *inputs.rejects, *filter(None, [inputs.curate_stats, inputs.recipe])]
    refuse_overwriting_inputs([], read, folders=[out])  # the report writes stats.json, README.md, ... into it
    curation = load_curate_stats(inputs.curate_stats)  # validated before the long pass, not after
    count_tokens, tokenizer_name = token_counter(tokenizer)
    unreadable: list[dict] = []
    records = read_records(inputs.data, format=format, salvage=salvage, on_reject=unreadable.append,
                           on_progress=progress)
    stats, kept_sample = collect(records, count_tokens, sample_size=sample_size, seed=seed)
    if not stats["overview"]["records"]:
        raise InputError("no records to report on", file=str(inputs.data[0]),
                         hint="check the format (oid inspect) or point at the kept data of a curation run")
    stats = {"tokenizer": tokenizer_name, **stats, "warnings": kept_count_warnings(curation, stats, unreadable)}
    found = stats["overview"]["records"]  # rows read = rejected on read + records, as in convert and curate
    stats["read"] = {"rows": found + len(unreadable), "rejected_on_read": len(unreadable), "records": found}
    reject_stats, reject_sample = (reject_summary(chain(unreadable, iter_rejects(inputs.rejects)), seed=seed)
                                   if inputs.rejects or unreadable else (None, []))
    stats["rejects"] = reject_stats
    stats["funnel"] = curation_funnel(curation, reject_stats, stats["overview"]["records"])
    stats["inputs"] = {"data": [str(p) for p in inputs.data], "rejects": [str(p) for p in inputs.rejects],
                       "curate_stats": str(inputs.curate_stats) if inputs.curate_stats else None,
                       "recipe": str(inputs.recipe) if inputs.recipe else None}
    stats["samples"] = {"kept": [r.get("id") for r in kept_sample],
                        "rejected": [{"operator": r.get("operator"), "reason": r.get("reason")} for r in reject_sample]}

    page_title = f"Dataset report: {title or inputs.data[0].name}"
    figures = all_figures(stats)
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    for name, png in figures.items():
        write_atomic(out / "figures" / f"{name}.png", png)
    token_rule = WHITESPACE_RULE if tokenizer_name == WHITESPACE_CJK else f"Tokens counted with {tokenizer_name}."
    page = render_html(stats, figures, title=page_title, inputs=stats["inputs"]["data"], token_rule=token_rule,
                       kept_samples=kept_sample, rejected_samples=reject_sample)
    write_atomic(out / "report.html", page)
    write_atomic(out / "stats.json", orjson.dumps(stats, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    recipe_text = inputs.recipe.read_text(encoding="utf-8") if inputs.recipe else None
    card = dataset_card(stats, title=title or inputs.data[0].stem, license=license,
                        data_files=link_data(inputs.data, out), recipe=recipe_text)
    write_atomic(out / "README.md", card)
    return stats
