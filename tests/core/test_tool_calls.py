"""Tool calls: one shape for chat templates, parsed back from model text, rendered the same in training."""

from __future__ import annotations

import json

import pytest

from oidkit.core.chat import CHATML_TEMPLATE, IGNORE_INDEX, encode_record
from oidkit.core.chat import CHATML_TOOLS_TEMPLATE as TOOLS_TEMPLATE
from oidkit.core.tool_calls import parse_tool_calls, template_message, template_supports_tools, template_tools
from oidkit.io import read_records
from oidkit.models.tiny import build_tokenizer

WEATHER = {"name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
CALL_TEXT = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def test_templates_that_read_tools_are_told_apart_from_those_that_do_not():
    assert template_supports_tools(TOOLS_TEMPLATE) and not template_supports_tools(CHATML_TEMPLATE)
    assert not template_supports_tools(None) and not template_supports_tools("{{ toolset }}")
    assert template_tools(json.dumps([WEATHER])) == [WEATHER] and template_tools(WEATHER) == [WEATHER]
    assert template_tools("") is None and template_tools([]) is None


def test_every_call_shape_becomes_the_template_shape_and_a_repeated_json_content_is_dropped():
    openai_call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    llama_factory_call = {"name": "f", "arguments": {"x": 1}}
    expected = {"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
    assert template_message({"role": "assistant", "content": None, "tool_calls": [openai_call]})["tool_calls"] == [
        expected]
    function_call_turn = {"role": "assistant", "content": '{"name": "f", "arguments": {"x": 1}}',
                          "tool_calls": [llama_factory_call]}
    assert template_message(function_call_turn) == {"role": "assistant", "content": "", "tool_calls": [expected]}
    kept = template_message({"role": "assistant", "content": "Let me look.", "tool_calls": [
        {"name": "f", "arguments": "not json"}]})
    assert kept["content"] == "Let me look." and kept["tool_calls"][0]["function"]["arguments"] == "not json"


def test_tool_calls_are_parsed_out_of_model_text():
    content, calls = parse_tool_calls(f"I will check.\n{CALL_TEXT}\n<tool_call>\n"
                                      '{"name": "get_time", "arguments": {"tz": "东京"}}\n</tool_call>')
    assert content == "I will check."
    assert [(c["type"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("function", "get_weather", {"city": "Paris"}), ("function", "get_time", {"tz": "东京"})]
    assert calls[0]["id"].startswith("call_") and calls[0]["id"] != calls[1]["id"]
    assert '"东京"' in calls[1]["function"]["arguments"]  # not escaped to \\u
    broken = "<tool_call>{not json}</tool_call> and text"
    assert parse_tool_calls(broken) == (broken, [])
    assert parse_tool_calls("no calls here  ") == ("no calls here  ", [])


@pytest.fixture
def glaive_file(tmp_path):
    """A glaive-style tool-calling conversation in LLaMA-Factory's ShareGPT layout, as ingest reads it."""
    path = tmp_path / "glaive.json"
    path.write_text(json.dumps([{"conversations": [
        {"from": "human", "value": "What's the weather in Paris?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})},
        {"from": "observation", "value": '{"temp_c": 21}'},
        {"from": "gpt", "value": "It is 21 °C in Paris."}], "tools": json.dumps([WEATHER])}]))
    return path


def test_training_renders_tool_call_turns_through_a_tools_template_and_learns_only_the_assistant(glaive_file):
    (record,) = read_records(glaive_file)
    tokenizer = build_tokenizer(chat_template=TOOLS_TEMPLATE)
    example, status = encode_record(record, tokenizer, TOOLS_TEMPLATE, max_seq_len=1024)
    assert status == "ok"
    text = tokenizer.decode(example["input_ids"])
    assert '"name": "get_weather", "description": "Current weather in a city"' in text  # the tools, in the prompt
    assert text.count("get_weather") == 2 and CALL_TEXT in text  # the call once, as <tool_call>, not as raw JSON
    assert '<tool_response>\n{"temp_c": 21}\n</tool_response>' in text
    learned = tokenizer.decode([t for t, label in zip(example["input_ids"][1:], example["labels"][:-1], strict=True)
                                if label != IGNORE_INDEX])
    assert learned == CALL_TEXT + "<|im_end|>\n" + "It is 21 °C in Paris.<|im_end|>\n"


def test_streamed_text_sends_content_at_once_and_holds_the_calls_until_the_end():
    from oidkit.core.tool_calls import ToolCallStream

    stream = ToolCallStream()
    pieces = ["I will ", "check.\n<to", "ol_call>\n{\"name\": \"get_weather\", ",
              "\"arguments\": {\"city\": \"Paris\"}}", "\n</tool_call>"]
    sent = [stream.feed(p) for p in pieces]
    assert sent == ["I will ", "check.\n", "", "", ""]
    content, calls = stream.finish()
    assert content == "" and calls[0]["function"]["name"] == "get_weather"
    plain = ToolCallStream()
    assert plain.feed("a < b and <t") == "a < b and " and plain.feed("able>") == "<table>"
    assert plain.finish() == ("", [])
