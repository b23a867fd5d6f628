"""Subgoal boundaries: the turn that first completes a domain's milestone is marked in ``info``
(with the subgoal's reward), once per episode, and never for work that misses it."""

from __future__ import annotations

import json

import gymnasium as gym

from hiergym.envs.tools import ToolCall
from hiergym.testing import oracle_actions


def _steps(env: gym.Env, actions: list) -> list[dict]:
    infos = []
    for action in actions:
        _, _, terminated, truncated, info = env.step(action)
        infos.append(info)
        if terminated or truncated:
            break
    return infos


def test_shopping_marks_the_turns_that_find_the_product_and_choose_the_variant() -> None:
    env = gym.make("hiergym/Shopping-v0", split="test", difficulty="easy")
    base = env.unwrapped
    env.reset(seed=0)
    oracle = oracle_actions(env)
    names = [c.name for c in oracle]
    infos = _steps(env, oracle)
    reached = {i: info["subgoals"]["reached"] for i, info in enumerate(infos)}
    assert reached[names.index("view_product")] == ["found_product"]
    assert reached[names.index("select_options")] == ["chose_variant"]
    final = infos[-1]["subgoals"]
    assert final["total"] == 2
    assert final["done"] == {
        "found_product": names.index("view_product"),
        "chose_variant": names.index("select_options"),
    }
    assert infos[names.index("view_product")]["subgoal_rewards"] == {"found_product": 0.5}
    assert all(not info["subgoal_rewards"] for i, info in enumerate(infos) if not reached[i])

    # repeating the work reaches nothing again: each subgoal counts once per episode
    env.reset(seed=0, options={"task": base.task})
    view = next(c for c in oracle if c.name == "view_product")
    infos = _steps(env, [view, view, view])
    assert [i["subgoals"]["reached"] for i in infos] == [["found_product"], [], []]


def test_a_product_that_misses_the_ask_reaches_no_subgoal() -> None:
    env = gym.make("hiergym/Shopping-v0", split="test", difficulty="easy")
    base = env.unwrapped
    env.reset(seed=0)
    task = base.task
    other = next(t for t in base.tasks if t.category != task.category)
    env.reset(seed=0, options={"task": task})
    infos = _steps(env, [ToolCall("view_product", {"product_id": other.target_id})])
    assert infos[0]["results"][0].ok
    assert infos[0]["subgoals"]["reached"] == [] and infos[0]["subgoals"]["done"] == {}


def test_a_fork_keeps_the_subgoals_already_reached() -> None:
    env = gym.make("hiergym/Shopping-v0", split="test", difficulty="easy")
    env.reset(seed=0)
    oracle = oracle_actions(env)
    upto = [c.name for c in oracle].index("view_product") + 1
    _steps(env, oracle[:upto])
    clone = env.unwrapped.fork()
    _, _, _, _, info = clone.step(oracle[upto - 1])
    assert info["subgoals"]["reached"] == []
    assert info["subgoals"]["done"] == {"found_product": upto - 1}


def test_rtl_marks_a_compiling_and_a_matching_design() -> None:
    env = gym.make("hiergym/RTL-v0", split="test", difficulty="easy")
    env.reset(seed=0)
    code = oracle_actions(env)[-1].arguments["code"]
    module = code[code.index("module") :]
    header = module[: module.index(";") + 1]
    broken = header + "\nendmodule\n"  # the right ports, no logic: compiles, matches nothing
    infos = _steps(
        env,
        [
            ToolCall("compile", {"code": broken}),
            ToolCall("simulate", {"code": broken}),
            ToolCall("simulate", {"code": code}),
        ],
    )
    assert infos[0]["subgoals"]["reached"] == ["compiles"], infos[0]["results"][0].content[:300]
    assert infos[1]["subgoals"]["reached"] == []
    assert json.loads(infos[1]["results"][0].content)["ok"] is False
    assert infos[2]["subgoals"]["reached"] == ["matches_reference"]
    assert infos[2]["subgoal_rewards"] == {"matches_reference": 0.75}


def test_an_env_without_subgoals_adds_nothing_to_info() -> None:
    env = gym.make("hiergym/Travel-v0")
    env.reset(seed=0)
    _, _, _, _, info = env.step(oracle_actions(env)[0])
    assert "subgoals" not in info and "subgoal_rewards" not in info
