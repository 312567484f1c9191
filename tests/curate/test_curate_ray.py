"""The Ray engine keeps exactly the records and rejects the local engine keeps, on the same recipe."""

from __future__ import annotations

import orjson
import pytest

from oidkit.curate.recipe import load_recipe
from oidkit.curate.runner import run_recipe
from oidkit.io import read_jsonl, read_records, write_jsonl

pytest.importorskip("ray")
pytestmark = pytest.mark.ray


def outputs(stats: dict) -> tuple[list[dict], list[dict]]:
    """Kept records and rejects of a run, read from the files its stats name (a shard set on Ray), in order."""
    kept = [r for path in stats["output"]["paths"] for r in read_jsonl(path)]
    return kept, [r for path in stats["output"]["rejects_paths"] for r in read_jsonl(path)]


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_engine_matches_local_engine(local_ray, tmp_path, shared_data, monkeypatch):
    from test_curate_runner import ALL_STEPS, crafted_records

    monkeypatch.setenv("OIDKIT_SHARED_DATA", str(shared_data))
    write_jsonl(tmp_path / "in.jsonl", crafted_records())
    results = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        recipe = load_recipe(base={"input": str(tmp_path / "in.jsonl"), "output": str(out), "engine": engine,
                                   "batch_size": 7, "steps": ALL_STEPS})  # small batches: many blocks
        stats = run_recipe(recipe)
        kept, rejects = outputs(stats)
        results[engine] = {
            "kept": kept,
            "rejects": [(r["operator"], r["reason"], r["record"]["id"], r.get("duplicate_of"), repr(r["value"]))
                        for r in rejects],
            "operators": [{k: v for k, v in step.items() if k != "seconds"} for step in stats["operators"]],
            "splits": stats["output"]["splits"],
        }
    assert results["ray"]["kept"] == results["local"]["kept"]
    assert {r["meta"]["lang"] for r in results["local"]["kept"]} == {"en", "zh"}  # the language step's stamp
    assert results["ray"]["rejects"] == results["local"]["rejects"]
    assert results["ray"]["operators"] == results["local"]["operators"]
    assert results["ray"]["splits"] == results["local"]["splits"]
    assert len(results["local"]["rejects"]) >= 5  # the crafted data exercises every dropping operator


def test_ray_workers_read_each_input_file_as_the_local_engine_reads_the_folder(local_ray, tmp_path, monkeypatch):
    from test_curate_runner import crafted_records

    import oidkit.curate.runner as runner

    records = crafted_records()
    shards = tmp_path / "in"
    shards.mkdir()
    write_jsonl(shards / "a.jsonl", records[: len(records) // 2])
    with open(shards / "b.jsonl", "wb") as f:  # bad rows in the second file: rejected on read, in order
        f.write(b'{"not": "a record"}\n')
        for record in records[len(records) // 2:]:
            f.write(orjson.dumps(record) + b"\n")
        f.write(b'{"messages": [{"role": "user", "content": "cut')
    (shards / "c.jsonl").write_bytes(b"")  # an empty shard reads nothing
    outcome = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        if engine == "ray":  # the driver reads nothing: the workers do (separate processes, not patched)
            monkeypatch.setattr(runner, "read_records", lambda *a, **k: pytest.fail("the driver read the input"))
        stats = run_recipe(load_recipe(base={"input": str(shards), "output": str(out), "engine": engine,
                                             "batch_size": 5, "steps": [{"op": "exact_dedup"}]}))
        outcome[engine] = (stats["input"] | {"ingest_rejects": None}, *outputs(stats),
                           list(read_jsonl(out / "ingest_rejects.jsonl")))
    assert outcome["ray"] == outcome["local"]
    read, kept, _, ingest_rejects = outcome["local"]
    assert [r["reason"] for r in ingest_rejects] == ["missing_field", "invalid_json"]
    assert read["rows"] == len(records) + 2 and read["records"] == len(records)
    assert [r["id"] for r in kept][:3] == [r["id"] for r in records][:3]


def test_a_bad_input_read_in_a_worker_is_the_readers_own_message(local_ray, tmp_path):
    from oidkit.errors import InputError

    (tmp_path / "cut.json").write_text('[{"conversations": [{"from": "human", "value": "hi"}]}, {"conv')
    messages = []
    for engine in ("local", "ray"):
        recipe = load_recipe(base={"input": str(tmp_path / "cut.json"), "output": str(tmp_path / engine),
                                   "engine": engine, "steps": [{"op": "exact_dedup"}]})
        with pytest.raises(InputError) as error:
            run_recipe(recipe)
        messages.append(str(error.value))
    assert messages[1] == messages[0] and "truncated JSON array" in messages[0] and "--salvage" in messages[0]


@pytest.mark.real
def test_semantic_operators_match_on_ray(local_ray, tmp_path):
    from test_curate_runner import crafted_records

    records = crafted_records()
    write_jsonl(tmp_path / "in.jsonl", records)
    steps = [{"op": "semantic_dedup", "threshold": 0.9}, {"op": "select_diverse", "n": 10}]
    outcome = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        kept, rejects = outputs(run_recipe(load_recipe(base={"input": str(tmp_path / "in.jsonl"), "output": str(out),
                                                             "engine": engine, "batch_size": 7, "steps": steps})))
        outcome[engine] = ([r["id"] for r in kept],
                           [(r["operator"], r["reason"], r["record"]["id"], r.get("duplicate_of")) for r in rejects])
    assert outcome["ray"] == outcome["local"]
    assert len(outcome["local"][0]) == 10 and any(r[1] == "semantic_duplicate" for r in outcome["local"][1])


def test_an_interrupted_ray_run_resumes_from_its_step_checkpoint(local_ray, tmp_path, monkeypatch):
    from test_curate_runner import crafted_records

    write_jsonl(tmp_path / "in.jsonl", crafted_records())
    benchmark = tmp_path / "bench.jsonl"
    steps = [{"op": "heuristics"}, {"op": "decontaminate", "ngram": 8,
                                    "benchmarks": [{"name": "mine", "path": str(benchmark), "fields": ["question"]}]},
             {"op": "exact_dedup"}]

    def run(engine: str) -> tuple[dict, list, list]:
        out = tmp_path / engine
        stats = run_recipe(load_recipe(base={"input": str(tmp_path / "in.jsonl"), "output": str(out),
                                             "engine": engine, "batch_size": 7, "steps": steps}))
        kept, rejects = outputs(stats)
        return ([{k: v for k, v in step.items() if k != "seconds"} for step in stats["operators"]], kept,
                [(r["operator"], r["reason"], r["record"]["id"]) for r in rejects])

    benchmark.write_text('{"question": "cut off mid-rec')  # a broken benchmark file fails step 2 in the workers
    with pytest.raises(Exception, match=r"bench\.jsonl"):
        run("ray")
    assert (tmp_path / "ray" / ".steps" / "00-heuristics" / "records").is_dir()
    assert not (tmp_path / "ray" / "stats.json").exists()

    benchmark.write_text('{"question": "Write a short story about a lighthouse keeper who finds a message"}\n')
    from oidkit.curate.ray_engine import RayEngine

    monkeypatch.setattr(RayEngine, "read", lambda *a: pytest.fail("a resumed run does not read the input again"))
    resumed = run("ray")
    monkeypatch.undo()
    straight = run("local")
    assert resumed == straight
    assert ("decontaminate", "benchmark_overlap") in {r[:2] for r in straight[2]}  # the fixed step did its work


STEPS = [{"op": "heuristics"}, {"op": "exact_dedup"}, {"op": "near_dedup", "field": "instruction", "threshold": 0.7}]


def test_ray_workers_write_the_kept_records_and_rejects_as_shard_sets_equal_to_local(local_ray, tmp_path,
                                                                                       monkeypatch):
    from test_curate_runner import crafted_records

    import oidkit.curate.ray_engine as ray_engine
    import oidkit.curate.runner as runner

    write_jsonl(tmp_path / "in.jsonl", crafted_records())
    results = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        if engine == "ray":  # the driver writes no record: the workers do (separate processes, not patched)
            monkeypatch.setattr(runner, "write_records", lambda *a, **k: pytest.fail("the driver wrote records"))
            monkeypatch.setattr(ray_engine, "write_records", lambda *a, **k: pytest.fail("the driver wrote records"))
        stats = run_recipe(load_recipe(base={"input": str(tmp_path / "in.jsonl"), "engine": engine, "batch_size": 5,
                                             "output": {"path": str(out), "format": "parquet", "shard_size": 4},
                                             "steps": STEPS}))
        rejects = [r for path in stats["output"]["rejects_paths"] for r in read_jsonl(path)]
        results[engine] = {"kept": list(read_records(stats["output"]["paths"])),  # shards in manifest order
                           "rejects": [(r["operator"], r["reason"], r["record"]["id"], repr(r["value"]))
                                       for r in rejects],
                           "operators": [{k: v for k, v in s.items() if k != "seconds"} for s in stats["operators"]],
                           "read": stats["input"]["records"], "written": stats["output"]["records"]}
        assert stats["input"]["records"] == stats["output"]["records"] + len(rejects)  # written + rejected = read
    monkeypatch.undo()
    local, on_ray = results["local"], results["ray"]
    assert on_ray["kept"] == local["kept"] and on_ray["rejects"] == local["rejects"]  # same records, same order
    assert on_ray["operators"] == local["operators"] and on_ray["written"] == local["written"]
    assert len(local["rejects"]) >= 3 and len({r[0] for r in local["rejects"]}) == 3  # every step dropped some

    out = tmp_path / "ray"
    manifest = orjson.loads((out / "kept.shards.json").read_bytes())
    shards = sorted(p.name for p in out.glob("kept-*.parquet"))
    assert manifest["shards"] == shards and sum(manifest["records"]) == on_ray["written"]
    assert max(manifest["records"]) <= 4 and len(shards) >= on_ray["written"] // 4
    rejects_manifest = orjson.loads((out / "rejects.shards.json").read_bytes())
    assert sum(rejects_manifest["records"]) == len(on_ray["rejects"])
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no staging folder or temporary left


def test_a_ray_run_killed_before_the_manifest_leaves_no_complete_looking_output(local_ray, tmp_path, monkeypatch):
    from test_curate_runner import crafted_records

    import oidkit.io.outputs as outputs_module
    from oidkit.io.outputs import incomplete_outputs

    write_jsonl(tmp_path / "in.jsonl", crafted_records())
    out = tmp_path / "out"
    recipe = load_recipe(base={"input": str(tmp_path / "in.jsonl"), "output": str(out), "engine": "ray",
                               "batch_size": 5, "steps": STEPS})
    seen_at_manifest = []
    write_atomic = outputs_module.write_atomic

    def killed_at_manifest(path, data):
        seen_at_manifest.append(sorted(p.name for p in out.glob("kept-*.jsonl")))
        raise KeyboardInterrupt  # the run dies right before the manifest, every shard already renamed

    monkeypatch.setattr(outputs_module, "write_atomic", killed_at_manifest)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe)
    shards = sorted(out.glob("kept-*.jsonl"))
    assert seen_at_manifest == [[p.name for p in shards]] and len(shards) == 2  # a shard per worker CPU
    assert not (out / "kept.shards.json").exists() and not (out / "stats.json").exists()
    assert {p["reason"] for p in incomplete_outputs(shards)} == {"incomplete_shard_set"}

    monkeypatch.setattr(outputs_module, "write_atomic", write_atomic)
    stats = run_recipe(recipe)  # the rerun resumes from the last step's checkpoint and publishes the set
    assert orjson.loads((out / "kept.shards.json").read_bytes())["shards"] == [p.name for p in shards]
    assert incomplete_outputs(sorted(out.glob("*-*.jsonl"))) == []
    kept, rejects = outputs(stats)
    assert len(kept) + len(rejects) == stats["input"]["records"] and not (out / ".steps").exists()


def test_oid_curate_on_ray_shows_our_progress_not_rays_info_lines_and_a_local_rerun_replaces_its_shards(
        tmp_path):
    """A fresh `oid curate engine=ray` (its own Ray instance) prints Ray's warnings at most, never its INFO lines
    (one per executed dataset before); a local run into the same folder then leaves only its own files (without
    --force it would find the same finished run, whichever engine made it, and do nothing)."""
    import os
    import subprocess
    import sys

    from test_curate_runner import crafted_records

    write_jsonl(tmp_path / "in.jsonl", crafted_records())
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_DATA_LOG_LEVEL", "RAY_ADDRESS")}
    command = [sys.executable, "-m", "oidkit.cli", "curate", "--op", "exact_dedup", str(tmp_path / "in.jsonl"),
               str(out)]
    ray_run = subprocess.run([*command, "engine=ray"], capture_output=True, text=True, env=env, timeout=300)
    assert ray_run.returncode == 0, ray_run.stderr
    assert "kept 37 of 38" in " ".join(ray_run.stderr.split())
    assert " INFO " not in ray_run.stderr and "streaming_executor" not in ray_run.stderr
    assert (out / "kept.shards.json").exists() and (out / "rejects.shards.json").exists()
    local_run = subprocess.run([*command, "--force"], capture_output=True, text=True, env=env, timeout=300)
    assert local_run.returncode == 0, local_run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["kept.jsonl", "recipe.yaml", "rejects.jsonl", "stats.json"]


@pytest.mark.parametrize("address", [None, "ray://head:10001"])
def test_ray_failing_to_start_is_one_clear_error_not_a_bug_report(monkeypatch, address):
    """Ray raises a plain Exception when its node times out starting on a busy machine: it read as a bug."""
    import ray

    from oidkit.curate.ray_engine import RayEngine
    from oidkit.errors import OidError

    def timed_out(**kwargs):
        raise Exception("The current node timed out during startup.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", timed_out)
    if address:
        monkeypatch.setenv("RAY_ADDRESS", address)
    else:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(OidError) as caught:
        RayEngine(batch_size=8, progress=lambda *args: None)
    where = f"reach the cluster at RAY_ADDRESS={address}" if address else "start its local node"
    assert f"Ray could not {where}: The current node timed out" in str(caught.value)
    assert "engine=local" in str(caught.value)
