"""Model resolution: folders, aliases converted once from the packaged GGUF, the cache listing."""

from __future__ import annotations

import time

import pytest

from oidkit.errors import ConfigError
from oidkit.models import load_model, resolve_model
from oidkit.models.registry import list_models, package_gguf


def test_a_local_folder_resolves_to_itself_and_loads(tiny_model_path):
    assert resolve_model(tiny_model_path) == tiny_model_path
    model, tokenizer = load_model(tiny_model_path)
    assert not model.training and tokenizer.pad_token is not None


def test_unknown_names_fail_at_once_cached_hub_ids_pass_and_unknown_aliases_explain(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("OIDKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for name in ("someone/some-model", "smollm2", "demo-out/tuned", "no/such/folder"):
        started = time.perf_counter()
        with pytest.raises(ConfigError, match="oid models list") as error:
            resolve_model(name)
        assert time.perf_counter() - started < 1 and "smollm2-135m-instruct" in str(error.value)
    snapshot = tmp_path / "hub" / "models--someone--some-model" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--someone--some-model" / "refs").mkdir()
    (tmp_path / "hub" / "models--someone--some-model" / "refs" / "main").write_text("abc")
    assert resolve_model("someone/some-model") == "someone/some-model"
    with pytest.raises(ConfigError, match="known aliases: smollm2-135m-instruct"):
        package_gguf("no-such-model")
    assert [row["alias"] for row in list_models()] == ["smollm2-135m-instruct"]
    assert list_models()[0]["cached"] is False


@pytest.mark.real
def test_smollm2_alias_is_converted_once_then_loads_fast_and_answers(smollm2_model_dir, monkeypatch):
    monkeypatch.setenv("OIDKIT_CACHE", str(smollm2_model_dir.parents[1]))
    assert resolve_model("smollm2-135m-instruct") == smollm2_model_dir
    assert list_models()[0]["cached"] is True
    started = time.perf_counter()
    model, tokenizer = load_model("smollm2-135m-instruct")
    assert time.perf_counter() - started < 5  # a safetensors read, not a GGUF dequantisation
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    output = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(output[0, prompt["input_ids"].shape[1]:])
