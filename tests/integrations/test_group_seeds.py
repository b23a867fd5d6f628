"""act_batch gives every group member its own sampling seed (a server honouring seeds would
otherwise answer a group's identical requests identically)."""

from __future__ import annotations

from hiergym.agents import LLMAgent
from hiergym.agents.llm import Completion, member_seed
from hiergym.rollouts import collect

from .fakes import ENV_ID


class SeedEcho:
    """A backend without complete_batch (like OpenAICompatible) that answers with its seed."""

    name = "seed-echo"
    native_tools = True

    def __init__(self):
        self.seeds: list[int | None] = []

    def complete(self, messages, tools, *, seed, temperature, max_tokens):
        self.seeds.append(seed)
        return Completion(text=f"seed {seed}", prompt_tokens=1, completion_tokens=1)


def test_each_member_of_a_batch_gets_its_own_seed():
    backend = SeedEcho()
    agent = LLMAgent(backend, temperature=1.0)
    agent.reset(7)
    infos = [{"messages": [{"role": "user", "content": "hi"}], "tools": []}] * 4
    texts = agent.act_batch(infos, slots=[0, 1, 2, 3])
    assert backend.seeds[0] == 7  # member 0 samples as a lone episode of seed 7 would
    assert len(set(backend.seeds)) == 4 and len(set(texts)) == 4
    assert backend.seeds == [member_seed(7, s) for s in range(4)]
    # a member keeps its seed when others drop out of the batch, and across steps
    agent.act_batch(infos[:2], slots=[1, 3])
    assert backend.seeds[4:] == [member_seed(7, 1), member_seed(7, 3)]
    # no seed stays no seed (the server samples freely)
    agent.reset(7)
    agent.usage.seed = None
    agent.act_batch(infos[:2])
    assert backend.seeds[6:] == [None, None]


def test_member_seeds_do_not_collide_with_the_next_groups():
    # collect gives group g the seed seed + g: member seeds must not repeat a neighbour's
    seeds = [member_seed(g, m) for g in range(8) for m in range(8)]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**31 for s in seeds)


def test_a_group_of_rollouts_samples_with_distinct_seeds():
    backend = SeedEcho()
    rows = collect(
        ENV_ID, LLMAgent(backend, temperature=1.0), tasks=1, group_size=3, split="test",
        difficulty="easy", seed=5, env_kwargs={"max_turns": 2},
    )  # fmt: skip
    assert [r["seed"] for r in rows] == [5, 5, 5]  # the same task and env seed
    assert sorted(set(backend.seeds)) == sorted({member_seed(5, m) for m in range(3)})
    first_replies = {r["messages"][2]["content"] for r in rows}
    assert len(first_replies) == 3  # three different samples of one request
