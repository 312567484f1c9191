"""--config FILE and key=value settings of oid eval, oid synth and oid annotate: flags < file < overrides < flags
typed, every bad key or value in one message, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from oidkit.cli import app

runner = CliRunner()


def one_line(output: str) -> str:
    return " ".join(output.split())


def held_out_file(folder: Path) -> Path:
    """A one-conversation JSONL file for eval to be pointed at."""
    data = folder / "held_out.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}]}) + "\n")
    return data


def refused_eval(folder: Path, config_text: str, *overrides: str) -> tuple[Path, Path, str]:
    """``oid eval`` on a held-out file with this ``--config`` and overrides, which must be a usage error:
    the data file, the config file and the message on one line."""
    data, config = held_out_file(folder), folder / "eval.yaml"
    config.write_text(config_text)
    result = runner.invoke(app, ["eval", str(data), "--config", str(config), *overrides])
    assert result.exit_code == 2 and "Traceback" not in result.output
    return data, config, one_line(result.output)


def test_eval_names_every_bad_key_and_value_of_the_config_and_overrides(tmp_path):
    data, config, text = refused_eval(tmp_path, "model: m\nlimit: many\n", "max_new_tokenz=3", "tokens=some")
    assert f"{config}: invalid eval settings:" in text
    assert "limit: Input should be a valid integer" in text
    assert "tokens: Input should be 'assistant' or 'all'" in text
    assert "max_new_tokenz: Extra inputs are not permitted" in text
    result = runner.invoke(app, ["eval", str(data), "--config", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "missing.yaml: file not found" in one_line(result.output)


def test_numeric_settings_out_of_range_are_named_with_value_and_range_before_any_work(tmp_path):
    data, config, text = refused_eval(tmp_path, "model: no-such-model\nlimit: -3\nbatch_size: 0\n",
                                   "max_new_tokens=0", "shots=-1")
    assert f"{config}: invalid eval settings:" in text and "no-such-model" not in text  # before loading the model
    assert "limit: Input should be greater than or equal to 1 (got -3)" in text
    assert "batch_size: Input should be greater than or equal to 1 (got 0)" in text
    assert "max_new_tokens: Input should be greater than or equal to 1 (got 0)" in text
    assert "shots: Input should be greater than or equal to 0 (got -1)" in text
    result = runner.invoke(app, ["synth", "self-instruct", f"seeds={data}", f"out={tmp_path / 'o'}", "model=m",
                                 "temperature=-0.5", "top_p=1.5", "novelty_threshold=2", "concurrency=0", "num=0"])
    text = one_line(result.output)
    assert result.exit_code == 2 and "invalid self-instruct settings:" in text
    for problem in ("temperature: Input should be greater than or equal to 0 (got -0.5)",
                    "top_p: Input should be less than or equal to 1 (got 1.5)",
                    "novelty_threshold: Input should be less than or equal to 1 (got 2)",
                    "concurrency: Input should be greater than or equal to 1 (got 0)",
                    "num: Input should be greater than or equal to 1 (got 0)"):
        assert problem in text
    assert not (tmp_path / "o").exists()
    for command in (["synth", "evol", str(data), "rounds=0", "limit=0"],
                    ["synth", "respond", str(data), "max_tokens=0"]):
        result = runner.invoke(app, [*command, "-o", str(tmp_path / "o"), "--model", "m"])
        assert result.exit_code == 2 and "greater than or equal to 1 (got 0)" in one_line(result.output)
    result = runner.invoke(app, ["eval", str(data), "-m", "m", "--limit", "0"])  # the flag has the same range
    assert result.exit_code == 2 and "--limit" in result.output


def test_eval_task_is_a_choice_of_the_task_registry(tmp_path):
    from oidkit.evaluate import TASKS

    data = tmp_path / "held_out.jsonl"
    data.write_text(json.dumps({"question": "1+1?", "answer": "#### 2"}) + "\n")
    result = runner.invoke(app, ["eval", "--help"], env={"COLUMNS": "250"})  # one row per option
    assert result.exit_code == 0 and f"<{'|'.join(TASKS)}>" in result.output  # --task lists its choices
    result = runner.invoke(app, ["eval", str(data), "--model", "no-such-model", "--task", "bogus"])
    text = one_line(result.output)
    assert result.exit_code == 2 and "Invalid value for '--task'" in text and "no-such-model" not in text
    assert all(f"'{task}'" in text for task in TASKS)
    config = tmp_path / "eval.yaml"
    config.write_text("model: no-such-model\ntask: bogus\n")
    result = runner.invoke(app, ["eval", str(data), "--config", str(config)])
    assert result.exit_code == 2 and "task: Input should be 'choice', 'gsm8k', 'generation' or 'records' (got " \
        "'bogus')" in one_line(result.output)


def test_synth_required_settings_may_come_from_the_file_and_are_named_when_missing(tmp_path):
    result = runner.invoke(app, ["synth", "respond", str(tmp_path / "in.jsonl"), "max_tokens=3"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    text = one_line(result.output)
    assert "invalid respond settings: out: Field required model: Field required" in text
    result = runner.invoke(app, ["annotate", str(tmp_path / "in.jsonl"), "concurrency=two", "-o", "o", "--model", "m"])
    assert result.exit_code == 2 and "concurrency: Input should be a valid integer" in one_line(result.output)


def test_self_instruct_takes_the_file_then_overrides_then_typed_flags(tmp_path, tiny_model_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"id": f"s{i}", "instruction": f"Name a colour number {i}.",
                                         "instances": [{"input": "", "output": "red"}]}) + "\n" for i in range(10)))
    config = tmp_path / "si.yaml"
    config.write_text(yaml.safe_dump({"seeds": str(seeds), "model": str(tiny_model_path), "out": str(tmp_path / "o"),
                                      "num": 1, "max_rounds": 1, "requests_per_round": 1, "max_tokens": 64,
                                      "instance_max_tokens": 4, "seed": 5}))
    result = runner.invoke(app, ["synth", "self-instruct", "--config", str(config), "max_tokens=16", "seed=6",
                                 "--max-tokens", "8"])
    assert result.exit_code == 0, result.output
    # the funnel reads as counts, not as Python dicts
    assert "generated " in result.output and "failed requests: generation" in result.output
    assert "{" not in result.output
    settings = json.loads((tmp_path / "o" / "funnel.json").read_text())
    assert settings["seeds"] == str(seeds) and settings["model"] == str(tiny_model_path)
    chosen = settings["config"]
    assert (chosen["num_instructions"], chosen["max_rounds"], chosen["instance_max_tokens"]) == (1, 1, 4)  # file
    assert chosen["seed"] == 6  # the override beats the file
    assert chosen["max_tokens"] == 8  # the flag typed beats both
    assert chosen["temperature"] == 0.7  # neither: the flag's default


def test_funnel_counts_print_as_words():
    from oidkit.cli import counts_text

    assert counts_text({"novelty": 30, "length": 1, "big": 12000}) == "novelty 30, length 1, big 12,000"
    assert counts_text({"records": 4, "mean_score": 3.5, "unparsable": 0}) == "records 4, mean_score 3.5, unparsable 0"
    assert counts_text({"mean_score": None}) == "mean_score n/a"
    assert counts_text({}) == "none"
