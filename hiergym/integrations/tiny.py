"""A tiny causal LM and tokenizer built in code (no download): for tests and CPU smoke runs.

The tokenizer is a byte-level BPE trained with ``tokenizers`` on the env's own text (prompts,
tool schemas, the oracle's calls), wrapped as a ``PreTrainedTokenizerFast`` with the Qwen3 chat
template TRL ships (native tool calls as ``<tool_call>`` blocks, which TRL knows how to parse).
The model is a two-layer Qwen3 with random weights. It learns nothing useful in a few steps; it
exercises every code path of a real run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
]


def corpus(env_id: str, episodes: int = 8, **make_kwargs: Any) -> list[str]:
    """Text to train the tokenizer on: prompts, tool schemas and oracle calls of a few tasks."""
    import gymnasium as gym

    import hiergym  # noqa: F401

    env = gym.make(env_id, **make_kwargs)
    base = env.unwrapped
    texts = [base.system_prompt(), json.dumps(base.toolbox.schemas())]
    oracle = base.make_oracle()
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        texts.append(obs)
        for call in oracle.plan(base.task):
            texts.append(json.dumps({"name": call.name, "arguments": call.arguments}))
            obs, _, terminated, truncated, _ = env.step(call)
            texts.append(obs[:4000])
            if terminated or truncated:
                break
    env.close()
    return texts


def tiny_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> Any:
    """A byte-level BPE tokenizer trained on ``texts``, with the Qwen3 chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen3_chat_template

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.padding_side = "left"
    fast.chat_template = qwen3_chat_template
    return fast


def tiny_model(tokenizer: Any, seed: int = 0, hidden_size: int = 32, layers: int = 2) -> Any:
    """A Qwen3 causal LM with random weights sized for ``tokenizer``."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=hidden_size // 2,
        max_position_embeddings=16384,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    model = Qwen3ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def tiny_model_and_tokenizer(env_id: str, seed: int = 0, **make_kwargs: Any) -> tuple[Any, Any]:
    tokenizer = tiny_tokenizer(corpus(env_id, **make_kwargs))
    return tiny_model(tokenizer, seed=seed), tokenizer
