"""The Lagrangian constrained reward: hand-computed rewards and multiplier updates over episodes."""

from __future__ import annotations

import gymnasium as gym
import pytest

from hiergym.rewards.lagrangian import LagrangianReward
from hiergym.rewards.wrappers import ProcessReward
from hiergym.testing import oracle_actions, play


def _episode(env: gym.Env, actions: list, seed: int = 0) -> tuple[float, dict]:
    base = env.unwrapped
    out = play(env, actions, seed=seed, options={"task": base.task, "max_turns": len(actions)})
    return sum(out.rewards), out.verdict


def test_rewards_and_multipliers_follow_the_dual_update_by_hand() -> None:
    env = LagrangianReward(
        gym.make("hiergym/Shopping-v0"), {"product": 0.9, "response": 0.5}, lr=0.5, initial=1.0
    )
    base = env.unwrapped
    base.reset(seed=0)
    oracle = oracle_actions(env)
    # episode 1: the oracle, every level at 1.0
    reward, verdict = _episode(env, oracle)
    assert verdict["reward"] == 1.0
    # r = 1 + 1.0 * (1 - 0.9) + 1.0 * (1 - 0.5) = 1.6
    assert reward == pytest.approx(1.6)
    # lambda <- lambda - lr * slack: product 1 - 0.5 * 0.1 = 0.95, response 1 - 0.5 * 0.5 = 0.75
    assert env.multipliers == pytest.approx({"product": 0.95, "response": 0.75})
    # episode 2: no answer at all (every level at 0, the gated reward 0)
    reward, verdict = _episode(env, ["I give up."])
    assert verdict["reward"] == 0.0
    # r = 0 + 0.95 * (0 - 0.9) + 0.75 * (0 - 0.5) = -1.23
    assert reward == pytest.approx(-1.23)
    # product 0.95 + 0.5 * 0.9 = 1.4, response 0.75 + 0.5 * 0.5 = 1.0
    assert env.multipliers == pytest.approx({"product": 1.4, "response": 1.0})
    assert env.updates == 2
    # the multipliers survive env.reset(): they adapt across episodes
    env.reset(seed=1)
    assert env.multipliers == pytest.approx({"product": 1.4, "response": 1.0})
    state = env.state_dict()
    env.reset_multipliers()
    assert env.multipliers == {"product": 1.0, "response": 1.0} and env.updates == 0
    env.load_state_dict(state)
    assert env.multipliers == pytest.approx({"product": 1.4, "response": 1.0})


def test_multipliers_are_projected_onto_their_bounds_and_info_reports_them() -> None:
    env = LagrangianReward(
        gym.make("hiergym/Shopping-v0"), {"product": 0.2}, lr=5.0, max_multiplier=2.0
    )
    env.unwrapped.reset(seed=0)
    oracle = oracle_actions(env)
    for _ in range(2):  # slack +0.8: lambda would go negative, is held at 0
        _episode(env, oracle)
        assert env.multipliers == {"product": 0.0}
    base = env.unwrapped
    out = play(env, ["nothing"], seed=0, options={"task": base.task, "max_turns": 1})
    assert out.rewards == [pytest.approx(0.0)]  # lambda was 0 for this episode
    assert env.multipliers == {"product": 1.0}  # 0 + 5 * 0.2
    for _ in range(3):
        play(env, ["nothing"], seed=0, options={"task": base.task, "max_turns": 1})
    assert env.multipliers == {"product": 2.0}  # capped at max_multiplier


def test_process_rewards_inside_pass_through() -> None:
    inner = ProcessReward(gym.make("hiergym/Shopping-v0"))
    plain = ProcessReward(gym.make("hiergym/Shopping-v0"))
    env = LagrangianReward(inner, {"product": 1.0}, initial=3.0)
    env.unwrapped.reset(seed=0)
    oracle = oracle_actions(env)
    got, _ = _episode(env, oracle)
    plain.unwrapped.reset(seed=0)
    want, _ = _episode(plain, oracle)
    assert got == pytest.approx(want)  # the product constraint holds exactly: slack 0


def test_bad_configuration_is_refused_with_the_reason() -> None:
    env = gym.make("hiergym/Shopping-v0")
    with pytest.raises(ValueError, match="unknown levels"):
        LagrangianReward(env, {"produkt": 0.5})
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        LagrangianReward(env, {"product": 1.5})
    with pytest.raises(ValueError, match="at least one"):
        LagrangianReward(env, {})
