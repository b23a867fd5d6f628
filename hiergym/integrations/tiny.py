"""A tiny causal LM and tokenizer built in code (no download): for tests and CPU smoke runs.

The tokenizer is a byte-level BPE trained with ``tokenizers`` on the env's own text (prompts,
tool schemas, the oracle's calls and the results they got), wrapped as a
``PreTrainedTokenizerFast`` with :data:`COMPACT_CHAT_TEMPLATE`: Qwen3's turn markers and native
``<tool_call>`` blocks (parsed by TRL's Qwen3 response template, set on the tokenizer), but the
tools listed as one line of signatures instead of their JSON schemas (half the tokens of a
Shopping episode), no empty ``<think>`` block, ``{% generation %}`` markers around the assistant
turns (SFT on the assistant tokens only) and every message rendered the same whatever follows it
(prefix-preserving, as TRL's multi-turn GRPO requires). The model is a small Qwen3 with random
weights; after a few hundred SFT steps on oracle episodes it makes well-formed calls (see
``examples/train_grpo.py``).
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


COMPACT_CHAT_TEMPLATE = (
    "{%- if messages and messages[0].role == 'system' or tools %}"
    "{{- '<|im_start|>system\n' }}"
    "{%- if messages and messages[0].role == 'system' %}{{- messages[0].content }}{%- endif %}"
    "{%- if tools %}{{- '\nTools: ' }}"
    "{%- for tool in tools %}{%- set fn = tool.function if tool.function is defined else tool %}"
    "{{- fn.name + '(' }}"
    "{%- if fn.parameters is defined and fn.parameters.properties is defined %}"
    "{{- fn.parameters.properties | list | join(', ') }}{%- endif %}"
    "{{- ')' }}{%- if not loop.last %}{{- '; ' }}{%- endif %}"
    "{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- set content = message.content if message.content is string else '' %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\n' }}"
    "{%- generation %}"
    "{{- content }}"
    "{%- for call in message.tool_calls or [] %}"
    "{%- set call = call.function if call.function is defined else call %}"
    "{%- if content or not loop.first %}{{- '\n' }}{%- endif %}"
    '{{- \'<tool_call>\n{"name": "\' + call.name + \'", "arguments": \' }}'
    "{%- if call.arguments is string %}{{- call.arguments }}"
    "{%- else %}{{- call.arguments | tojson }}{%- endif %}"
    "{{- '}\n</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>\n' }}"
    "{%- endgeneration %}"
    "{%- elif message.role == 'tool' %}"
    "{{- '<|im_start|>user\n<tool_response>\n' + content + '\n</tool_response><|im_end|>\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
"""Qwen3's turns and ``<tool_call>`` blocks, tools as one line of signatures, training-ready."""


def tiny_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> Any:
    """A byte-level BPE tokenizer trained on ``texts``, with :data:`COMPACT_CHAT_TEMPLATE`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen3_schema, qwen3_template

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
    fast.chat_template = COMPACT_CHAT_TEMPLATE
    try:  # TRL parses the model's tool calls with the Qwen3 response parser
        from trl.chat_template_utils import _SUPPORTS_RESPONSE_TEMPLATE
    except ImportError:  # pragma: no cover - depends on the TRL release
        _SUPPORTS_RESPONSE_TEMPLATE = True
    if _SUPPORTS_RESPONSE_TEMPLATE:
        fast.response_template = qwen3_template
    else:  # pragma: no cover - transformers < 5.13
        fast.response_schema = qwen3_schema
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


def transcript_texts(conversations: Iterable[Any]) -> list[str]:
    """Tokenizer training text from SFT conversations (rows with ``messages`` and ``tools``, as
    ``hiergym export --format sft`` writes them): every message's content and tool call, and the
    tools' names and parameters."""
    texts: list[str] = []
    for row in conversations:
        tools = row.get("tools") or []
        if isinstance(tools, str):
            tools = json.loads(tools)
        for tool in tools:
            fn = tool.get("function", tool)
            texts.append(
                fn["name"]
                + "("
                + ", ".join((fn.get("parameters") or {}).get("properties") or {})
                + ")"
            )
        for m in row["messages"]:
            if m.get("content"):
                texts.append(str(m["content"]))
            for call in m.get("tool_calls") or []:
                fn = call.get("function", call)
                args = fn.get("arguments", {})
                args = json.loads(args) if isinstance(args, str) else args
                texts.append(json.dumps({"name": fn["name"], "arguments": args}))
    return texts
