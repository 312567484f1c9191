"""--device auto|cpu|cuda: resolution, the CUDA branch's requests (pinned memory), SDPA on both, the CPU as it was.

No GPU here: ``torch.cuda.is_available`` is monkeypatched, and the CUDA branch is checked by what it asks for.
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from oidkit.cli import app
from oidkit.errors import ConfigError
from oidkit.models import load_model
from oidkit.models.device import fast_dtype, resolve_device, to_device
from oidkit.train.loop import token_loss_sum

RECORD = {"id": "0", "messages": [{"role": "user", "content": "What is 2 plus 2?"},
                                  {"role": "assistant", "content": "2 plus 2 is 4."}]}


def gpu(monkeypatch, present: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: present)


@pytest.mark.parametrize(("avx512_bf16", "amx", "expected"), [
    (True, False, "bfloat16"), (False, True, "bfloat16"), (False, False, "float32")])
def test_fast_cpu_dtype_is_bf16_only_where_the_cpu_multiplies_it_natively(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert fast_dtype("cpu") == expected
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")  # a torch without the private checks
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert fast_dtype("cpu") == "float32"


@pytest.mark.parametrize(("bf16_gpu", "expected"), [(True, "bfloat16"), (False, "float32")])
def test_fast_cuda_dtype_is_bf16_where_the_gpu_has_it(monkeypatch, bf16_gpu, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16_gpu)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: not bf16_gpu)  # the CPU's must not count
    assert fast_dtype("cuda") == expected


def test_auto_picks_cuda_only_when_present_and_cuda_without_gpu_is_one_clear_error(monkeypatch):
    gpu(monkeypatch, True)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda") == "cuda" and resolve_device("cpu") == "cpu"
    gpu(monkeypatch, False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    no_gpu = r"^--device cuda: torch sees no CUDA GPU.*\nhint: choose auto or cpu for --device on this machine"
    with pytest.raises(ConfigError, match=no_gpu):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match=r"^train.device cuda: .*\nhint: choose auto or cpu for train.device"):
        resolve_device("cuda", option="train.device")
    with pytest.raises(ConfigError, match="expected one of auto, cpu, cuda"):
        resolve_device("gpu")


def test_cuda_and_the_cpu_load_with_sdpa_attention(tiny_model_path, monkeypatch):
    """SDPA is transformers' default for Llama: the model loaded for CUDA (its move there faked) and for the
    CPU both run it, without an option of ours."""
    moved = []
    real_to = torch.nn.Module.to

    def to(self, *args, **kwargs):
        if args and args[0] == "cuda":
            moved.append(type(self).__name__)
            return self
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", to)
    gpu(monkeypatch, True)
    on_cuda, _ = load_model(tiny_model_path, device="auto")
    assert moved == ["LlamaForCausalLM"] and on_cuda.config._attn_implementation == "sdpa"
    gpu(monkeypatch, False)
    on_cpu, _ = load_model(tiny_model_path, device="auto")
    assert moved == ["LlamaForCausalLM"] and on_cpu.config._attn_implementation == "sdpa"
    assert next(on_cpu.parameters()).device.type == "cpu"


def test_int8_stays_on_the_cpu_under_auto_and_refuses_cuda(tiny_model_path, monkeypatch):
    gpu(monkeypatch, True)
    with pytest.raises(ConfigError, match="int8 weights run on the CPU only"):
        load_model(f"{tiny_model_path}@int8", device="cuda")
    model, _ = load_model(f"{tiny_model_path}@int8", device="auto")
    assert next(model.parameters()).device.type == "cpu"


def fake_pinning(monkeypatch) -> list:
    """``Tensor.pin_memory`` recording the shapes it pins (CPU-only torch cannot pin); returns that list."""
    pinned = []

    def pin_memory(self):
        pinned.append(tuple(self.shape))
        return self

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
    return pinned


def test_cuda_batches_are_pinned_once_where_built_and_copied_without_blocking(tiny_model, monkeypatch):
    """On CUDA a batch is built in pinned memory, one pin per batch (``train.packing``), and the training step
    copies it without blocking and pins nothing more; the copy itself is redirected to the CPU."""
    from oidkit.models.loss import TargetLoss
    from oidkit.train.packing import BatchSource, eval_batches, pack_examples

    model, _ = tiny_model
    pinned, copies = fake_pinning(monkeypatch), []
    real_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        if args and args[0] == "cuda":
            copies.append(kwargs)
            return real_to(self, "cpu")
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", to)
    examples = [{"input_ids": [1, 5, 9, 7, 3], "labels": [5, 9, 7, 3, -100]},
                {"input_ids": [2, 4, 6], "labels": [4, 6, -100]}]
    rows = pack_examples(examples, 4)
    on_gpu = BatchSource(examples, rows, batch_size=2, pad_id=0, seed=0, pin=True)(0)
    assert pinned == [(3, 2, 5)]
    on_cuda = token_loss_sum(TargetLoss(model), on_gpu, device="cuda")
    assert pinned == [(3, 2, 5)] and copies == [{"non_blocking": True}] * 3
    assert len(eval_batches(examples, rows, 1, 0, pin=True)) == 2 and len(pinned) == 3
    copies.clear()
    on_host = BatchSource(examples, rows, batch_size=2, pad_id=0, seed=0)(0)
    eval_batches(examples, rows, 1, 0)
    on_cpu = token_loss_sum(TargetLoss(model), on_host, device="cpu")
    assert len(pinned) == 3 and not copies  # the CPU path pins and copies nothing
    assert all(torch.equal(on_host[key], on_gpu[key]) for key in ("input_ids", "labels", "position_ids"))
    assert float(on_cpu.detach()) == float(on_cuda.detach())
    ids = on_host["input_ids"]
    assert to_device(ids, "cpu") is ids


def test_device_cuda_without_gpu_exits_2_with_one_message(tiny_model_path, tmp_path, monkeypatch):
    gpu(monkeypatch, False)
    data = tmp_path / "held_out.jsonl"
    data.write_text(json.dumps(RECORD) + "\n")
    runner = CliRunner()
    for args in (["eval", str(data), "--model", str(tiny_model_path), "-o", str(tmp_path / "eval")],
                 ["chat", str(tiny_model_path)],
                 ["train", "train_demo", f"model.name={tiny_model_path}", f"data.train={data}",
                  f"train.output_dir={tmp_path / 'run'}"],
                 ["pretrain", "pretrain_tiny", f"tokenizer={tiny_model_path}", f"data.train=[{data}]",
                  f"train.output_dir={tmp_path / 'pre'}"]):
        result = runner.invoke(app, [*args, "--device", "cuda"])
        assert result.exit_code == 2, (args, result.output)
        assert result.output.count("error:") == 1 and "Traceback" not in result.output
        assert "cuda: torch sees no CUDA GPU" in result.output and "hint: choose auto or cpu for" in result.output
        assert "--device" in result.output
    assert not (tmp_path / "run").exists() and not (tmp_path / "eval").exists()  # refused before any work


def test_device_cpu_trains_exactly_as_auto_without_gpu(tiny_model_path, tmp_path, monkeypatch):
    """--device cpu and auto on a machine without GPU: the same losses; config.yaml keeps the device asked (a
    copy runs anywhere), summary.json says where the run went."""
    from oidkit.core.runs import read_metrics
    from oidkit.io import write_jsonl

    gpu(monkeypatch, False)
    data = tmp_path / "train.jsonl"
    write_jsonl(data, [{"id": str(i), "messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                                                   {"role": "assistant", "content": f"{2 * i}."}]} for i in range(8)])
    losses = {}
    for device in ("cpu", "auto"):
        run = tmp_path / device
        args = ["train", "train_demo", f"model.name={tiny_model_path}", f"data.train={data}",
                f"data.cache_dir={tmp_path / 'cache'}", f"train.output_dir={run}", "train.max_steps=3",
                "train.batch_size=2", "data.max_seq_len=64", "train.threads=1", "data.validation=null",
                "data.val_fraction=0.25", "data.num_proc=1", "--device", device]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        losses[device] = [r["loss"] for r in read_metrics(run / "metrics.csv") if r["split"] == "train"]
        assert f"device: {device}" in (run / "config.yaml").read_text()
        assert json.loads((run / "summary.json").read_text())["device"] == "cpu"
    assert len(losses["cpu"]) == 3 and losses["cpu"] == losses["auto"]


class Stop(Exception):
    """Raised by the recording model once it has seen its inputs."""


class InputRecorder(torch.nn.Module):
    """A stand-in model that records the device of every tensor it is called with, then stops."""

    config = type("Config", (), {"max_position_embeddings": 2048})()

    def __init__(self):
        super().__init__()
        self.devices: set[str] = set()

    def forward(self, **inputs):
        self.devices = {v.device.type for v in inputs.values() if isinstance(v, torch.Tensor)}
        raise Stop

    generate = forward


def test_eval_and_serve_put_their_inputs_on_the_models_device(tiny_model, monkeypatch):
    """The model says it lives on "meta" (a device without data): every input must be built there."""
    from oidkit.evaluate.choice import continuation_logprobs
    from oidkit.evaluate.perplexity import perplexity
    from oidkit.models.backends import GenerationRequest, LocalBackend
    from oidkit.serve.generation import Completion, DecodeBatch, SamplingParams, make_generator

    _, tokenizer = tiny_model
    model = InputRecorder()
    monkeypatch.setattr("oidkit.models.device.model_device", lambda m: torch.device("meta"))
    calls = {
        "perplexity": lambda: perplexity(model, tokenizer, [RECORD]),
        "choice": lambda: continuation_logprobs(model, tokenizer, "2 plus 2 is", [" 4", " 5"]),
        "generate": lambda: LocalBackend("m", loaded=(model, tokenizer)).generate(
            [GenerationRequest(RECORD["messages"][:1], {"temperature": 0.0, "max_tokens": 4})]),
        "serve": lambda: DecodeBatch(model).add([Completion(tokenizer, [1, 2, 3], SamplingParams(), {0},
                                                            make_generator(0))]),
    }
    failures = []
    for name, call in calls.items():
        model.devices = set()
        with pytest.raises(Stop):
            call()
        failures += [] if model.devices == {"meta"} else [name]
    assert not failures, failures


def test_pretraining_builds_its_llama_on_the_resolved_device(tiny_model_path, tmp_path, monkeypatch):
    """train.device auto with a GPU present: the from-scratch model is sent to cuda before training starts."""
    from oidkit.train.config import load_train_config
    from oidkit.train.run import run_training

    gpu(monkeypatch, True)
    pinned, sent_to = fake_pinning(monkeypatch), []
    real_to = torch.nn.Module.to

    def to(self, *args, **kwargs):
        sent_to.append(str(args[0]) if args else kwargs.get("device"))
        if sent_to[-1] == "cuda":
            raise Stop
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", to)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("one two three four five six.\n\nseven eight nine ten.\n")
    config = load_train_config("pretrain_tiny", [f"tokenizer={tiny_model_path}", f"data.train=[{corpus}]",
                                                 f"train.output_dir={tmp_path / 'run'}", "data.val_fraction=0.5"])
    assert config.train.device == "auto"
    with pytest.raises(Stop):
        run_training(config)
    assert sent_to == ["cuda"] and pinned  # the validation batches were built in pinned memory
    assert "device: auto" in (tmp_path / "run" / "config.yaml").read_text()  # as asked, not where it went
