"""Inputs are never modified and outputs are atomic: every command refuses to write over an input, and a run
killed at any moment leaves either nothing or a complete output under a final name (docs/reliability.md)."""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from oidkit.atomic import atomic_folder, atomic_path, write_atomic
from oidkit.errors import ConfigError
from oidkit.io import validate
from oidkit.io.outputs import incomplete_outputs
from oidkit.io.writers import write_records

ROOT = Path(__file__).resolve().parents[2]
RECIPE = """steps:
  - op: normalise
  - op: heuristics
  - op: exact_dedup
  - op: near_dedup
  - op: split
    ratios: {train: 0.9, test: 0.1}
"""


ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "1000"}  # rich must not wrap the paths


def oid(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oidkit.cli", *map(str, args)], capture_output=True, text=True,
                          env=ENV)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def crafted(path: Path, n: int, seed: int = 0) -> Path:
    """Alpaca JSONL with varied lengths, some duplicates and a bad row every 97 rows."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "river", "stone", "light", "cloud", "水", "山"]
    with open(path, "wb") as f:
        for i in range(n):
            if i % 97 == 0:
                f.write(b'{"instruction": 5}\n')
                continue
            text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 60)))
            number = i if i % 50 else 1  # every 50th row repeats row 1: the dedup steps have work to do
            f.write(orjson.dumps({"instruction": f"Question {number}: {text}", "input": "",
                                  "output": f"Answer {number}. {text}."}) + b"\n")
    return path


@pytest.fixture
def data(tmp_path) -> Path:
    return crafted(tmp_path / "in.jsonl", 30)


def assert_refused(result: subprocess.CompletedProcess, protected: list[Path], before: list[str], *words: str):
    assert result.returncode == 2, result.stdout + result.stderr
    message = " ".join((result.stdout + result.stderr).split())
    assert "Traceback" not in message and "error:" in message, message
    for word in words:
        assert word in message, message
    assert [sha256(p) for p in protected] == before, "an input was modified"


def test_convert_refuses_rejects_named_like_its_input(tmp_path):
    """The issue's case: OUT's default rejects name is the input file."""
    source = tmp_path / "fixed.rejects.jsonl"
    source.write_text('{"instruction":"a","input":"","output":"b"}\n')
    before = [sha256(source)]
    result = oid("convert", source, tmp_path / "fixed.jsonl")
    assert_refused(result, [source], before, "also an input", "fixed.rejects.jsonl")
    assert not (tmp_path / "fixed.jsonl").exists()


@pytest.mark.parametrize("case", ["rejects_option", "same", "symlink", "dotdot", "hardlink", "shard"])
def test_convert_refuses_every_output_that_is_an_input(data, tmp_path, case):
    before = [sha256(data)]
    (tmp_path / "sub").mkdir()
    if case == "rejects_option":
        args = [data, tmp_path / "out.jsonl", "--rejects", data]
    elif case == "same":
        args = [data, data]
    elif case == "symlink":
        (tmp_path / "link.jsonl").symlink_to(data)
        args = [data, tmp_path / "link.jsonl"]
    elif case == "dotdot":
        args = [data, tmp_path / "sub" / ".." / "in.jsonl"]
    elif case == "hardlink":
        os.link(data, tmp_path / "sub" / "hard.jsonl")
        args = [data, tmp_path / "sub" / "hard.jsonl"]
    else:  # re-sharding a set into a name whose shards are the inputs
        shard = tmp_path / "out-00000.jsonl"
        shutil.copy(data, shard)
        before = [sha256(shard)]
        data = shard
        args = [shard, tmp_path / "out.jsonl", "--shard-size", "5"]
    result = oid("convert", *args)
    assert_refused(result, [data], before, "also an input", str(data))
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "out.rejects.jsonl").exists()


@pytest.mark.parametrize("case", ["folder_is_input", "holds_input_as_kept"])
def test_curate_refuses_an_output_folder_that_is_or_holds_an_input(data, tmp_path, case):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    if case == "folder_is_input":
        target, protected = data, data
    else:  # the input is the kept.jsonl of the folder curate writes into
        target = tmp_path / "run"
        target.mkdir()
        protected = shutil.copy(data, target / "kept.jsonl")
    before = [sha256(Path(protected))]
    result = oid("curate", recipe, f"input={protected}", f"output={target}")
    assert_refused(result, [Path(protected)], before, str(protected))


def test_report_refuses_to_write_into_the_curation_folder_it_reads(data, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    assert oid("curate", recipe, f"input={data}", f"output={tmp_path / 'run'}").returncode == 0
    files = sorted(p for p in (tmp_path / "run").rglob("*") if p.is_file())
    before = [sha256(p) for p in files]
    result = oid("report", tmp_path / "run", "-o", tmp_path / "run")
    assert_refused(result, files, before, "holds the input")


def test_library_writers_refuse_outputs_that_are_inputs(data, tmp_path):
    """Review export, export, tokenizer, viz and train check their outputs the same way (no model needed: the
    check runs before any work)."""
    from oidkit.models.export import export_run
    from oidkit.models.tokenizer import train_tokenizer
    from oidkit.review.export import export_reviewed
    from oidkit.train.config import TrainConfig, refuse_run_dir_holding_data
    from oidkit.viz.curves import write_curves

    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    (run / "best" / "tokenizer_config.json").write_text("{}")
    (run / "config.yaml").write_text("model: {name: x}\n")
    (run / "metrics.csv").write_text("step,split,loss\n1,train,2.0\n")
    (run / "curves.html").symlink_to(run / "metrics.csv")
    log = tmp_path / "log.jsonl"
    log.write_text("")
    review_rejects = Path(shutil.copy(data, tmp_path / "review.rejects.jsonl"))
    protected = [data, review_rejects, run / "best" / "tokenizer_config.json", run / "config.yaml", run / "metrics.csv"]
    before = [sha256(p) for p in protected]
    calls = [
        (lambda: export_reviewed(data, data, log_path=log), "also an input"),
        (lambda: export_reviewed(data, review_rejects, log_path=log, rejects=review_rejects), "also an input"),
        (lambda: export_run(run, run, merge=False), "holds the input"),
        (lambda: export_run(run, run / "best", merge=False), "holds the input"),
        (lambda: train_tokenizer([data], tmp_path, vocab_size=300), "holds the input"),
        (lambda: write_curves(run / "metrics.csv", run), "also an input"),
        (lambda: refuse_run_dir_holding_data(TrainConfig.model_validate(
            {"model": {"name": "x"}, "data": {"train": str(data)}, "train": {"output_dir": str(tmp_path)}})),
         "holds the input"),
    ]
    for call, words in calls:
        with pytest.raises(ConfigError, match=words):
            call()
    assert [sha256(p) for p in protected] == before


def test_atomic_path_leaves_the_old_file_on_failure_and_cleans_killed_leftovers(tmp_path):
    target = tmp_path / "out.txt"
    write_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    leftover = tmp_path / f".out.txt.tmp-{dead}"  # a killed run's temp file: its process is gone
    leftover.write_text("partial")
    assert incomplete_outputs([leftover])[0]["reason"] == "temporary_file"
    write_atomic(target, "new")
    assert target.read_text() == "new" and not leftover.exists()
    # the record writer opens its files the same way: its killed leftovers go, and a link is written through
    records = [{"id": "1", "messages": [{"role": "user", "content": "hi"}]}]
    leftover = tmp_path / f".real.jsonl.tmp-{dead}"  # temporary names are those of the file linked to
    leftover.write_text("partial")
    real, link = tmp_path / "real.jsonl", tmp_path / "kept.jsonl"
    link.symlink_to(real)
    assert write_records(records, link) == [link]
    assert not leftover.exists() and link.is_symlink() and orjson.loads(real.read_bytes())["id"] == "1"


def test_devices_pipes_and_links_are_written_through_not_replaced(data, tmp_path):
    """Renaming a finished file onto /dev/full once replaced the device node with a regular file."""
    import stat

    result = oid("convert", data, "/dev/full", "--to", "jsonl")
    assert result.returncode == 2 and "No space left on device" in result.stderr
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    with atomic_path("/dev/null") as target:
        assert target == Path("/dev/null")
        target.write_text("x")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    assert oid("convert", data, fifo, "--to", "jsonl").returncode == 0
    piped = reader.communicate(timeout=30)[0]
    assert oid("convert", data, tmp_path / "file.jsonl").returncode == 0
    assert piped == (tmp_path / "file.jsonl").read_bytes() != b""
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    real, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    real.write_text("old\n")
    link.symlink_to(real)
    assert oid("convert", data, link).returncode == 0
    assert link.is_symlink() and real.read_bytes() == link.read_bytes() != b"old\n"


def test_atomic_folder_replaces_a_folder_only_when_complete(tmp_path):
    folder = tmp_path / "model"
    with atomic_folder(folder) as temp:
        (temp / "a.txt").write_text("1")
    with pytest.raises(RuntimeError), atomic_folder(folder) as temp:
        (temp / "b.txt").write_text("2")
        raise RuntimeError("boom")
    assert [p.name for p in folder.iterdir()] == ["a.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # a folder with other files, as with export -o .
    with pytest.raises(ConfigError, match="does not write \\(model\\)"), atomic_folder(tmp_path) as temp:
        (temp / "config.json").write_text("{}")
    assert [p.name for p in tmp_path.iterdir()] == ["model"] and (folder / "a.txt").read_text() == "1"


def test_validate_flags_shards_without_manifest_and_stale_shards(data, tmp_path):
    tmp_path = tmp_path / "sets"
    result = oid("convert", data, tmp_path / "set.jsonl", "--shard-size", "10")
    assert result.returncode == 0, result.stderr
    shards = sorted(tmp_path.glob("set-*.jsonl"))
    assert len(shards) == 3 and validate(shards)["ok"]
    assert validate(tmp_path)["records"] == 29  # a folder read skips the manifest and the rejects file
    extra = shutil.copy(shards[0], tmp_path / "set-00007.jsonl")
    assert [p["reason"] for p in validate(Path(extra))["problems"]] == ["shard_not_in_manifest"]
    Path(extra).unlink()
    (tmp_path / "set.shards.json").unlink()  # as after a kill between the shard renames and the manifest
    summary = validate(shards)
    assert not summary["ok"] and {p["reason"] for p in summary["incomplete"]} == {"incomplete_shard_set"}
    cli = oid("validate", tmp_path / "set-00001.jsonl")
    assert cli.returncode == 1 and "no set.shards.json" in " ".join(cli.stdout.split())
    hf_name = shutil.copy(shards[0], tmp_path / "train-00000-of-00001.jsonl")  # not one of our sets
    assert validate(Path(hf_name))["ok"]


def final_files(folder: Path) -> dict[str, bytes]:
    """Files under final names (hidden temp files and checkpoints excluded); run times removed from stats."""
    found = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            content = path.read_bytes()
            if path.name == "stats.json":
                content = re.sub(rb'"seconds": [0-9.e-]+', b'"seconds": 0', content)
            found[str(relative)] = content
    return found


KILL_CASES = {
    "convert": lambda data, out: ["convert", data, out / "out.jsonl"],
    "convert_sharded": lambda data, out: ["convert", data, out / "out.parquet", "--shard-size", "700"],
    "curate": lambda data, out: ["curate", out.parent / "recipe.yaml", f"input={data}", f"output={out}"],
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(KILL_CASES))
def test_sigkill_at_random_points_leaves_nothing_or_complete_outputs(tmp_path, case):
    data = crafted(tmp_path / "in.jsonl", 3000)
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    out = tmp_path / "out"
    args = [*map(str, KILL_CASES[case](data, out))]
    started = time.perf_counter()
    assert oid(*args).returncode == 0
    duration = time.perf_counter() - started
    reference = final_files(out)
    assert reference and sha256(data) == sha256(crafted(tmp_path / "again.jsonl", 3000))
    shutil.rmtree(out)
    rng = random.Random(14)
    for _ in range(10):
        process = subprocess.Popen([sys.executable, "-m", "oidkit.cli", *args], env=ENV,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, duration))
        process.kill()
        process.wait()
        found = final_files(out) if out.exists() else {}
        shards = [Path(out / name) for name in found if re.search(r"-\d{5}\.", name)]
        flagged = {p["file"] for p in incomplete_outputs(shards)}
        for name, content in found.items():
            if str(out / name) in flagged:  # killed between the shard renames and the manifest: flagged
                continue
            assert content == reference.get(name), f"{name} under its final name is not complete"
    assert oid(*args).returncode == 0
    assert final_files(out) == reference, "the rerun differs from an uninterrupted run"
    assert validate(out / ("kept.jsonl" if case == "curate" else next(iter(reference))))["ok"]
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name], "temporary files left after the rerun"
