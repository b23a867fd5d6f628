"""The Transformers backend with a tiny random model and a tokenizer trained in code (no downloads)."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

CHAT_TEMPLATE = (
    "{% if tools %}<|system|>tools: {% for t in tools %}{{ t['function']['name'] }} {% endfor %}\n{% endif %}"
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
    "{% if m.get('tool_calls') %}{% for c in m['tool_calls'] %}<tool_call>{{ c['function']['name'] }} "
    "{{ c['function']['arguments'] | tojson }}</tool_call>{% endfor %}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny-llm")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = [
        '<tool_call>{"name": "search", "arguments": {"query": "rain jacket"}}</tool_call>',
        "find me a waterproof jacket under $80",
    ] * 50
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<unk>", "<pad>", "<eos>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        pad_token_id=fast.pad_token_id,
        eos_token_id=fast.eos_token_id,
        bos_token_id=None,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    return str(path)


def test_hf_agent_plays_an_episode_step_and_records_tokens(tiny_model):
    from hiergym.agents import load

    agent = load(f"hf:{tiny_model}", max_tokens=8, device="cpu")
    env = gym.make("hiergym/Shopping-v0")
    agent.reset(seed=5)
    obs, info = env.reset(seed=0)
    prompt = agent.backend.prompt(*agent.request(info))
    assert prompt.startswith("<|system|>tools: search view_product") and prompt.endswith(
        "<|assistant|>"
    )
    action = agent.act(obs, info)
    assert isinstance(action, str)
    obs, reward, terminated, truncated, info = env.step(action)  # gibberish is an error observation
    assert obs.startswith("error:") and not terminated
    stats = agent.episode_stats()
    assert (
        stats["requests"] == 1
        and 0 < stats["completion_tokens"] <= 8
        and stats["prompt_tokens"] > 50
    )
    # tool-call history renders through the template with dict arguments
    history = env.unwrapped.messages
    history.append(
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c",
                    "type": "function",
                    "function": {"name": "search", "arguments": json.dumps({"query": "x"})},
                }
            ],
        }
    )
    assert '<tool_call>search {"query": "x"}</tool_call>' in agent.backend.prompt(history, None)


def test_batched_generation_matches_one_by_one(tiny_model):
    from hiergym.agents import LLMAgent
    from hiergym.agents.transformers_backend import Transformers

    backend = Transformers(tiny_model, device="cpu", dtype="float32")
    agent = LLMAgent(backend, max_tokens=6)
    env = gym.make("hiergym/Shopping-v0")
    infos = [env.reset(seed=s)[1] for s in (0, 1, 2)]
    batched = agent.act_batch(infos)
    single = [agent.act("", i) for i in infos]
    assert batched == single
    assert agent.usage.requests == 6
