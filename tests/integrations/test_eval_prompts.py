"""The held-out evaluation of examples/train_grpo.py (LLMAgent over the Transformers backend) shows
a model, at every turn, the prompt it was trained on: a model that writes the oracle's calls must
see exactly the SFT rendering of the oracle's episode so far (as TRL's GRPO shows it, parsing the
calls with the tokenizer's response template)."""

from __future__ import annotations

import gymnasium as gym
import pytest

pytest.importorskip("transformers")

from hiergym.agents import LLMAgent  # noqa: E402
from hiergym.agents.transformers_backend import Transformers  # noqa: E402
from hiergym.export import chat_messages  # noqa: E402

from .fakes import ENV_ID  # noqa: E402

KW = {"split": "test", "difficulty": "easy"}


class Replay:
    """A causal LM double that answers each prompt with the next of ``targets`` (token ids) and
    keeps the prompts it was shown: a model that learned the oracle's episode perfectly."""

    def __init__(self, targets):
        self.targets = list(targets)
        self.prompts = []

    def generate(self, input_ids, attention_mask, max_new_tokens, **_):
        import torch

        assert input_ids.shape[0] == 1
        self.prompts.append(input_ids[0][attention_mask[0].bool()].tolist())
        new = torch.tensor([self.targets.pop(0)[:max_new_tokens]])
        return torch.cat([input_ids, new], dim=1)


def test_every_turn_sees_the_prompt_sft_trained_on(tmp_path):
    from hiergym.integrations.tiny import corpus, tiny_model, tiny_tokenizer

    tok = tiny_tokenizer(corpus(ENV_ID, episodes=2, **KW))
    tiny_model(tok, hidden_size=16, layers=1).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)

    # the oracle's episode as SFT sees it (hiergym export's conversation)
    env = gym.make(ENV_ID, max_turns=8, **KW)
    obs, info = env.reset(seed=3)
    tools = info["tools"]
    for call in env.unwrapped.make_oracle().plan(env.unwrapped.task):
        *_, terminated, truncated, _ = env.step(call)
    assert terminated
    oracle = chat_messages(env.unwrapped.messages)
    env.close()
    turns = [i for i, m in enumerate(oracle) if m["role"] == "assistant"]

    def render(messages, generation_prompt):
        return tok.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt
        )

    contexts = [render(oracle[:i], True) for i in turns]
    targets = [
        render(oracle[: i + 1], False)[len(c) :] for i, c in zip(turns, contexts, strict=True)
    ]
    assert all(t.startswith("<tool_call>") and t.endswith("<|im_end|>\n") for t in targets)

    backend = Transformers(str(tmp_path), device="cpu")
    backend.model = Replay(tok(t, add_special_tokens=False)["input_ids"] for t in targets)
    agent = LLMAgent(backend, temperature=0.0, max_tokens=256)
    env = gym.make(ENV_ID, max_turns=8, **KW)
    obs, info = env.reset(seed=3)
    agent.reset(3)
    terminated = False
    while not terminated:
        obs, reward, terminated, truncated, info = env.step(agent.act(obs, info))
        assert not truncated
    assert info["verdict"].passed and reward == 1.0
    shown = [tok.decode(p) for p in backend.model.prompts]
    assert len(shown) == len(contexts)
    for turn, (seen, trained) in enumerate(zip(shown, contexts, strict=True)):
        assert seen == trained, f"turn {turn}: the prompt differs from the SFT context"
    env.close()
