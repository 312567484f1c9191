"""A tiny, randomly initialised Llama-architecture model with a real tokenizer and chat template.

Tests and quick trials use it so that nothing needs the network: the tokenizer is a byte-level BPE
trained on the fly (any text, any language, encodes losslessly), the chat template is ChatML, the
same layout SmolLM2 uses.
"""

from __future__ import annotations

from pathlib import Path

from oidkit.core.chat import CHATML_TEMPLATE

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_DEFAULT_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Large language models learn from instructions and answers.",
    "user assistant system tool: what is two plus two? It is four.",
    "大型语言模型从指令和回答中学习。你好，世界！",
    "def add(a, b):\n    return a + b\n",
]


def build_tokenizer(vocab_size: int = 512, corpus: list[str] | None = None, chat_template: str = CHATML_TEMPLATE):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with ChatML special tokens and a ChatML chat template
    (``oidkit.core.chat.CHATML_TOOLS_TEMPLATE`` for one that supports tool calls)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus or _DEFAULT_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = chat_template
    return fast


def build_tiny_model(
    path: str | Path,
    *,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    max_position_embeddings: int = 512,
    tie_word_embeddings: bool = True,
    seed: int = 0,
    corpus: list[str] | None = None,
    chat_template: str = CHATML_TEMPLATE,
) -> Path:
    """Save a tiny random ``LlamaForCausalLM`` and its tokenizer to ``path`` and return the path."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    tokenizer = build_tokenizer(vocab_size, corpus, chat_template)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
