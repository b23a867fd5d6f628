"""The conversational envs: PettingZoo's API tests, the rule-based user, the verifier's levels,
the AEC view agreeing with the Gymnasium one, and the dialogue attacks of the hack matrix.

(``check_domain`` on both ids, oracle = 1.0 on every split and difficulty included, runs in
tests/conformance.)"""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest
from pettingzoo.test import api_test, parallel_api_test

from hiergym import dialogue
from hiergym.envs.dialogue.slots import asked_slots
from hiergym.envs.tools import ToolCall
from hiergym.testing import oracle_actions, play, run_hack_matrix

IDS = dialogue.ENV_IDS


def ask(text):
    return ToolCall("message_user", {"text": text})


@pytest.mark.parametrize("env_id", IDS)
def test_pettingzoo_api_and_parallel_api(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # text spaces: PettingZoo recommends Box/Discrete
        api_test(dialogue.make(env_id, max_turns=6), num_cycles=20)
        parallel_api_test(dialogue.make(env_id, parallel=True, max_turns=6), num_cycles=20)


def test_make_rejects_an_unknown_id_with_a_suggestion():
    with pytest.raises(ValueError, match="ShoppingChat-v0"):
        dialogue.make("hiergym/ShopingChat-v0")


def test_user_opens_vaguely_and_answers_only_what_was_asked():
    env = gym.make("hiergym/ShoppingChat-v0", split="test", difficulty="medium")
    obs, info = env.reset(seed=3)
    task = env.unwrapped.task
    base = task.base
    assert obs.startswith("User: ") and f"{base.budget:.2f}" not in obs
    assert info["user"] == "rule" and any(
        t["function"]["name"] == "message_user" for t in info["tools"]
    )
    obs, *_ = env.step(ask("What is your budget?"))
    assert obs == f"My budget is ${base.budget:.2f}."
    name, value = base.options[0]
    obs, *_ = env.step(f"Which {name} would you like?")  # plain prose is a message too
    assert value in obs and "budget" not in obs
    for attr in base.attributes:
        assert attr not in obs
    obs, *_ = env.step(ask("Any brand you prefer?"))
    assert obs == "I don't care about the brand."
    obs, *_ = env.step(ask("Great, I'll look now."))
    assert obs == "Okay."


def test_bad_messages_are_observations_and_the_episode_goes_on():
    env = gym.make("hiergym/ShoppingChat-v0")
    env.reset(seed=0)
    obs, _, term, trunc, _ = env.step(ask("   "))
    assert obs.startswith("error:") and "empty" in obs and not (term or trunc)
    two = '[{"name": "message_user", "arguments": {"text": "Budget?"}}, ' + (
        '{"name": "message_user", "arguments": {"text": "Color?"}}]'
    )
    obs, *_ = env.step(two)
    assert "one message to the user per turn" in obs
    obs, *_ = env.step(ask("What is your budget?"))  # the next turn may message again
    assert obs.startswith("My budget is")
    obs, *_ = env.step('{"name": "message_user", "arguments": {"text": ')
    assert obs.startswith("error:")  # a broken call is a parse error, not a message


@pytest.mark.parametrize("env_id", IDS)
def test_hard_tasks_change_one_preference_in_the_next_reply(env_id):
    env = gym.make(env_id, split="dev", difficulty="hard")
    env.reset(seed=1)
    task = env.unwrapped.task
    change = task.change
    assert change is not None
    first = env.step(ask(task.slot(change.slot).question))[0]
    assert first == change.before and first != task.slot(change.slot).answer
    other = next(n for n in task.needed if n != change.slot)
    second = env.step(ask(task.slot(other).question))[0]
    assert second == f"{task.slot(other).answer} {change.after}"
    third = env.step(ask("Anything else?"))[0]
    assert change.after not in third  # said once


def test_user_rejects_a_wrong_recommendation_with_a_reason():
    env = gym.make("hiergym/ShoppingChat-v0", split="test", difficulty="easy")
    env.reset(seed=2)
    base = env.unwrapped.task.base
    obs, *_ = env.step(ask(f"How about {base.sibling_id}?"))
    assert obs.startswith(f"{base.sibling_id} won't do") or obs.startswith(
        f"{base.sibling_id} is not"
    )
    obs, *_ = env.step(ask(f"How about {base.target_id}?"))
    assert obs == f"{base.target_id} sounds good to me."
    obs, *_ = env.step(ask(f"Or {base.sibling_id}, or {base.target_id}?"))
    assert obs == "Please suggest one product at a time."  # no free verifier of a page


def _verdict(env_id, actions, seed=0, **kw):
    env = gym.make(env_id, split="test", difficulty="medium", **kw)
    env.reset(seed=seed)
    plan = oracle_actions(env)
    out = play(env, actions(env.unwrapped.task, plan), seed=seed)
    return out.verdict, {lv["name"]: lv for lv in out.verdict["levels"]}


@pytest.mark.parametrize("env_id", IDS)
def test_oracle_reaches_one_and_its_questions_each_name_one_slot(env_id):
    verdict, levels = _verdict(env_id, lambda task, plan: plan)
    assert verdict["reward"] == 1.0
    assert [lv["name"] for lv in verdict["levels"]] == [
        "format",
        "elicitation",
        "correctness",
        "communication",
        "efficiency",
    ]
    env = gym.make(env_id, split="test", difficulty="medium")
    env.reset(seed=0)
    task = env.unwrapped.task
    for name in task.needed:
        assert asked_slots(task, task.slot(name).question) == (name,)


@pytest.mark.parametrize("env_id", IDS)
def test_elicitation_names_re_asks_and_off_task_questions(env_id):
    def gamed(task, plan):
        asks = [c for c in plan if c.name == "message_user"]
        rest = [c for c in plan if c.name != "message_user"]
        off = next(s for s in task.slots if s.kind == "off")
        return [*asks, asks[0], ask(f"What about the {off.name}?"), *rest]

    verdict, levels = _verdict(env_id, gamed)
    codes = [f["code"] for f in levels["elicitation"]["findings"]]
    assert codes == ["re_asked", "off_task"]
    assert levels["elicitation"]["score"] == pytest.approx(0.5)
    assert verdict["first_failed"] == "elicitation"
    assert levels["correctness"]["passed"]  # the answer itself is still judged


def test_a_false_price_fails_communication_only():
    def lying(task, plan):
        sub = plan[-1]
        msg = sub.arguments["message"] + f" It costs ${task.base.budget + 10:.2f}."
        return [*plan[:-1], ToolCall("submit", {**sub.arguments, "message": msg})]

    verdict, levels = _verdict("hiergym/ShoppingChat-v0", lying)
    assert verdict["first_failed"] == "communication"
    assert any(f["code"] == "false_price" for f in levels["communication"]["findings"])


def test_travel_message_level_catches_a_city_the_trip_does_not_visit():
    env = gym.make("hiergym/TravelChat-v0", split="test", difficulty="medium")
    env.reset(seed=0)
    base = env.unwrapped.task.base
    world = env.unwrapped.make_oracle().world
    trip = {base.origin, base.destination} | {
        c for c, city in world.cities.items() if city.region == base.destination
    }
    elsewhere = next(c for c in sorted(world.cities) if c not in trip)

    def wrong_city(task, plan):
        sub = plan[-1]
        msg = sub.arguments["message"] + f" We also stop in {elsewhere}."
        return [*plan[:-1], ToolCall("submit", {**sub.arguments, "message": msg})]

    verdict, levels = _verdict("hiergym/TravelChat-v0", wrong_city)
    assert verdict["first_failed"] == "communication"
    assert any(f["code"] == "false_city" for f in levels["communication"]["findings"])


@pytest.mark.parametrize("env_id", IDS)
def test_aec_with_the_rule_user_gives_the_gymnasium_verdict(env_id):
    gym_env = gym.make(env_id, split="dev", difficulty="hard")
    gym_env.reset(seed=4)
    plan = oracle_actions(gym_env)
    expected = play(gym_env, plan, seed=4)
    env = dialogue.make(env_id, split="dev", difficulty="hard")
    env.reset(seed=4)
    replies, turn = [], 0
    for agent in env.agent_iter(max_iter=4 * len(plan)):
        obs, reward, term, trunc, info = env.last()
        if term or trunc:
            env.step(None)
            continue
        if agent == "assistant":
            env.step(plan[turn].to_json())
            turn += 1
        else:
            reply = env.rule_reply()
            replies.append(reply)
            env.step(reply)
    verdict = env.base.verdict.to_dict()
    assert verdict == expected.verdict and verdict["reward"] == 1.0
    assert not env.agents  # both agents stepped out after the final cycle
    said = [o for o in expected.observations[1:] if o in replies]
    assert said and len(said) == sum(c.name == "message_user" for c in plan)


def test_parallel_view_ends_at_the_end_of_a_cycle_with_the_verdict_reward():
    env = dialogue.make("hiergym/ShoppingChat-v0", parallel=True, split="test")
    observations, infos = env.reset(seed=0)
    aec = env.unwrapped
    assert set(observations) == {"assistant", "user"}
    assert "You are the user" in observations["user"]
    plan = aec.base.make_oracle().plan(aec.base.task)
    total = {"assistant": 0.0, "user": 0.0}
    for call in plan:
        user = "(waiting)"
        if call.name == "message_user":
            user = aec.rule_reply(call.arguments["text"])
        observations, rewards, terms, truncs, infos = env.step(
            {"assistant": call.to_json(), "user": user}
        )
        if call.name == "message_user":
            assert observations["assistant"] == user
            assert observations["user"] == "Assistant: " + call.arguments["text"]
        for a, r in rewards.items():
            total[a] += r
    assert all(terms.values()) and total == {"assistant": 1.0, "user": 1.0}
    assert infos["user"]["ignored"] is True  # the last cycle asked the user nothing
    assert env.agents == []


DIALOGUE_ATTACKS = (
    "ask_everything",
    "reask_everything",
    "recommend_without_asking",
    "claim_needs_unchecked",
    "echo_user",
)


@pytest.mark.parametrize("env_id", IDS)
def test_dialogue_attacks_stay_under_their_ceilings(env_id):
    rows = run_hack_matrix(env_id, seeds=(1,), difficulty="hard", only=DIALOGUE_ATTACKS)
    names = {r.name for r in rows}
    assert {"ask_everything", "reask_everything", "claim_needs_unchecked"} <= names
    for r in rows:
        assert not r.breaches(), (r.name, r.rewards, r.ceiling)
        assert r.first_failed in ("elicitation", "correctness"), (r.name, r.first_failed)


def test_fork_mid_conversation_copies_the_user():
    env = gym.make("hiergym/ShoppingChat-v0", split="dev", difficulty="hard")
    env.reset(seed=0)
    task = env.unwrapped.task
    plan = oracle_actions(env)
    env.step(plan[0])  # the changing slot, answered with its decoy
    clone = env.unwrapped.fork()
    rest = [env.step(a)[0] for a in plan[1:3]]
    assert [clone.step(a)[0] for a in plan[1:3]] == rest
    assert task.change.after in rest[0]  # each copy's user corrected itself once
    assert env.unwrapped.user is not clone.user and clone.user.changed


def test_the_user_agent_brief_holds_its_requirements_and_its_change():
    env = dialogue.make("hiergym/TravelChat-v0", split="test", difficulty="hard")
    env.reset(seed=0)
    brief = env.observe("user")
    task = env.base.task
    assert "You are the user" in brief and task.change.after in brief
    assert all(task.slot(n).answer in brief for n in task.needed)


def test_hiergym_bench_runs_both_conversational_envs(tmp_path):
    import json

    from hiergym.cli import main

    args = ["bench", "--agents", "oracle", "--envs", "shoppingchat,travelchat"]
    args += ["--episodes", "1", "--difficulties", "hard", "--out", str(tmp_path)]
    assert main(args) == 0
    rows = [json.loads(x) for x in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    by = {(r["env_id"], r["agent"]): r["reward"] for r in rows}
    assert by[("hiergym/ShoppingChat-v0", "oracle")] == 1.0
    assert by[("hiergym/TravelChat-v0", "oracle")] == 1.0
