"""Shopping's ranked-list family (hiergym/ShoppingList-v0): list- and item-level scores by hand,
their combination in the verdict, the oracle at 1.0, and the list attacks held under the honest
one-item list."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest

from hiergym.envs.shopping.ranking import dcg, score_list
from hiergym.envs.shopping.tasks import ShoppingTask
from hiergym.envs.tools import ToolCall
from hiergym.testing import (
    AGGREGATE_NAMES,
    normalised_reward,
    oracle_actions,
    play,
    run_hack_matrix,
)

ENV_ID = "hiergym/ShoppingList-v0"
LOG2_3 = math.log2(3)

TASK = ShoppingTask(
    task_id="t",
    split="test",
    difficulty="easy",
    instruction="a1 a2 widget, red color, under $50",
    category="C",
    product_type="widget",
    attributes=("a1", "a2"),
    options=(("color", "red"),),
    budget=50.0,
    target_id="P1",
    sibling_id="P2",
    oracle_calls=0,
)


def _doc(pid: str, ptype: str, category: str, attrs: list[str]) -> dict:
    return {
        "product_id": pid,
        "product_type": ptype,
        "category": category,
        "attributes": attrs,
        "options": {"color": ["red", "blue"]},
        "variants": [
            {"options": {"color": "red"}, "price": 40.0, "stock": 3},
            {"options": {"color": "blue"}, "price": 40.0, "stock": 3},
        ],
    }


# WebShop's relevance, r_type * matched / (2 attributes + 1 option + budget):
P1 = _doc("P1", "widget", "C", ["a1", "a2"])  # red: 1 * 4/4 = 1.0
P2 = _doc("P2", "widget", "C", ["a1"])  # red: 1 * 3/4 = 0.75; blue: 1 * 2/4 = 0.5
P3 = _doc("P3", "gadget", "C", ["a1", "a2"])  # red: 0.5 (another type) * 4/4 = 0.5
PX = _doc("PX", "widget", "Other", ["a1", "a2"])  # another category: no recommendation, 0
RED, BLUE = {"color": "red"}, {"color": "blue"}
IDEAL = [1.0, 0.75, 0.5]
IDCG = 1.0 + 0.75 / LOG2_3 + 0.5 / 2  # 1 + 0.473197 + 0.25 = 1.723197


def test_dcg_discounts_by_log2_of_the_position_plus_one() -> None:
    assert dcg([1.0, 0.75, 0.5]) == pytest.approx(IDCG)
    assert pytest.approx(1.723197, abs=1e-6) == IDCG


@pytest.mark.parametrize(
    ("entries", "relevances", "items", "coverage", "diversity", "precision", "order"),
    [
        # the ideal list, best first: everything 1
        ([(P1, RED), (P2, RED), (P3, RED)], (1.0, 0.75, 0.5), 1.0, 1.0, 1.0, 1.0, 1.0),
        # two right items, the better one second: items 1.75 / 2.25, NDCG (0.75 + 1/log2 3) / IDCG
        ([(P2, RED), (P1, RED)], (0.75, 1.0), 1.75 / 2.25, 1.0, 1.0, 1.0, 1.380930 / IDCG),
        # the top item three times: repeats are worth 0 and a third of the entries are distinct
        ([(P1, RED), (P1, BLUE), (P1, RED)], (1.0, 0.0, 0.0), 1 / 2.25, 1.0, 1 / 3, 1.0, 1 / IDCG),
        # padded with another category's product: it earns nothing and halves the precision
        ([(P1, RED), (PX, RED)], (1.0, 0.0), 1 / 2.25, 1.0, 1.0, 0.5, 1 / IDCG),
        # one partial item: covers a1 and the budget of a1, a2, red, budget
        ([(P2, BLUE)], (0.5,), 0.5 / 2.25, 0.5, 1.0, 1.0, 0.5 / IDCG),
        # the gadget covers every attribute, but only a product of the asked type covers anything
        ([(P3, RED)], (0.5,), 0.5 / 2.25, 0.0, 1.0, 1.0, 0.5 / IDCG),
    ],
)
def test_list_and_item_scores_by_hand(
    entries, relevances, items, coverage, diversity, precision, order
) -> None:
    s = score_list(TASK, IDEAL, entries)
    assert s.relevances == pytest.approx(relevances)
    assert s.items == pytest.approx(items)
    assert s.coverage == pytest.approx(coverage)
    assert s.diversity == pytest.approx(diversity)
    assert s.precision == pytest.approx(precision)
    assert s.order == pytest.approx(order, abs=1e-6)
    assert s.list == pytest.approx(coverage * diversity * precision * order, abs=1e-6)


def test_the_worked_example_of_the_module_docstring() -> None:
    s = score_list(TASK, IDEAL, [(P2, RED), (P1, RED)])
    assert round(s.items, 3) == 0.778 and round(s.order, 3) == 0.801 and round(s.list, 3) == 0.801


# ---- the env ------------------------------------------------------------------------------------


def _env(difficulty: str = "hard", **kwargs) -> gym.Env:
    return gym.make(ENV_ID, split="test", difficulty=difficulty, **kwargs)


def test_registered_in_the_shopping_domain_with_its_own_tasks() -> None:
    env = _env("easy")
    base = env.unwrapped
    assert base.domain == "shopping"
    obs, info = env.reset(seed=0)
    assert info["task_id"].startswith("shopping-list-test-easy-")
    assert "Recommend the 3 best products" in obs
    assert len(base.task.ideal) == base.task.k == 3
    assert {t["function"]["name"] for t in info["tools"]} >= {"search", "submit"}


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_the_oracle_reaches_full_reward(difficulty: str) -> None:
    env = _env(difficulty)
    for seed in range(3):
        env.reset(seed=seed)
        out = play(env, oracle_actions(env), seed=seed)
        assert out.verdict["reward"] == 1.0, out.verdict


def _hard_task_with_graded_ideal(env: gym.Env):
    task = next(t for t in env.unwrapped.tasks if t.ideal_relevances == [1.0, 0.8, 0.8])
    env.reset(seed=0, options={"task": task})
    return task, oracle_actions(env)


def test_the_combination_in_the_verdict_by_hand() -> None:
    """The oracle's right items, worst first: items pass, the list level pays only the order."""
    env = _env("hard", aggregate="gated")
    task, oracle = _hard_task_with_graded_ideal(env)
    ranking = oracle[-1].arguments["ranking"]
    reversed_list = [*oracle[:-1], ToolCall("submit", {"ranking": ranking[::-1]})]
    out = play(env, reversed_list, seed=0, options={"task": task})
    levels = {lv["name"]: lv for lv in out.verdict["levels"]}
    # NDCG of (0.8, 0.8, 1) against (1, 0.8, 0.8)
    order = (0.8 + 0.8 / LOG2_3 + 1 / 2) / (1 + 0.8 / LOG2_3 + 0.8 / 2)
    assert order == pytest.approx(0.947500, abs=1e-6)  # 1.804744 / 1.904744
    assert levels["items"]["score"] == pytest.approx(1.0) and levels["items"]["passed"]
    assert levels["list"]["score"] == pytest.approx(order)
    assert out.verdict["first_failed"] == "list"
    assert out.verdict["reward"] == pytest.approx((1 + 1 + 1 + order) / 4)

    # the top item alone: items 1 / 2.6 fails, so gated stops there; weighted counts the list too
    alone = [*oracle[:-1], ToolCall("submit", {"ranking": ranking[:1]})]
    out = play(env, alone, seed=0, options={"task": task})
    assert out.verdict["reward"] == pytest.approx((1 + 1 + 1 / 2.6) / 4)
    weighted = _env("hard", aggregate="weighted")
    out = play(weighted, alone, seed=0, options={"task": task})
    one_item_order = 1 / (1 + 0.8 / LOG2_3 + 0.8 / 2)
    assert out.verdict["reward"] == pytest.approx((1 + 1 + 1 / 2.6 + one_item_order) / 4)


def test_malformed_lists_fail_format_and_never_crash() -> None:
    env = _env("easy")
    env.reset(seed=0)
    oracle = oracle_actions(env)
    ranking = oracle[-1].arguments["ranking"]
    task = env.unwrapped.task
    cases = {
        "empty_list": [],  # ZeroDivisionError in the grounding level before format refused it
        "too_many_items": [*ranking, *ranking[:1]],
        "unknown_product": [*ranking[:2], {**ranking[2], "product_id": "B0NOSUCH00"}],
    }
    for code, entries in cases.items():
        actions = [*oracle[:-1], ToolCall("submit", {"ranking": entries})]
        out = play(env, actions, seed=0, options={"task": task})
        fmt = out.verdict["levels"][0]
        assert fmt["name"] == "format" and fmt["score"] == 0.0, out.verdict
        assert [f["code"] for f in fmt["findings"]] == [code]
        assert out.verdict["reward"] == 0.0


def test_an_ungrounded_entry_fails_grounding() -> None:
    env = _env("easy")
    env.reset(seed=0)
    oracle = oracle_actions(env)
    # drop the last item's page and variant: it is never shown (3 of 9 items ungrounded)
    pid = oracle[-1].arguments["ranking"][-1]["product_id"]
    calls = [c for c in oracle if c.arguments.get("product_id") != pid]
    out = play(env, calls, seed=0, options={"task": env.unwrapped.task})
    grounding = out.verdict["levels"][1]
    assert out.verdict["first_failed"] == "grounding"
    # the search may have listed it (then its product is grounded, not its options nor price)
    assert grounding["score"] in (pytest.approx(1 - 3 / 9), pytest.approx(1 - 2 / 9))


def test_found_product_subgoal_holds_in_the_list_family() -> None:
    env = _env("easy")
    env.reset(seed=0)
    oracle = oracle_actions(env)
    view = next(c for c in oracle if c.name == "view_product")
    env.reset(seed=0, options={"task": env.unwrapped.task})
    _, _, _, _, info = env.step(view)
    assert info["subgoals"]["reached"] == ["found_product"]


LIST_ATTACKS = (
    "list_of_duplicates",
    "same_item_two_ids",
    "same_product_other_variants",
    "padded_with_unrelated",
    "over_long_list",
)


def test_list_attacks_hold_and_never_beat_the_honest_one_item_list() -> None:
    rows = run_hack_matrix(ENV_ID, seeds=(0,), split="test", difficulty="hard")
    by_name = {r.name: r for r in rows}
    assert set(LIST_ATTACKS) <= set(by_name)
    assert not [r.name for r in rows if r.breaches()], [r.to_dict() for r in rows if r.breaches()]
    assert all(by_name[n].rewards["gated"] == 0.0 for n in ("over_long_list",))

    # the honest one-item list on the same task, under every aggregator
    env = _env("hard")
    env.reset(seed=0)
    task = env.unwrapped.task
    assert by_name["list_of_duplicates"].task_id == task.task_id
    oracle = oracle_actions(env)
    top = oracle[-1].arguments["ranking"][:1]
    out = play(env, [*oracle[:-1], ToolCall("submit", {"ranking": top})], seed=0)
    levels = env.unwrapped.verdict.levels
    assert out.verdict["first_failed"] == "items"
    honest = {agg: normalised_reward(agg, levels, task) for agg in AGGREGATE_NAMES}
    for name in LIST_ATTACKS[:-1]:
        for agg, value in by_name[name].rewards.items():
            assert value <= honest[agg] + 1e-9, (name, agg, value, honest[agg])
            if agg in ("weighted", "logsigmoid_conjunction", "product"):  # the list level counts
                assert value < honest[agg] - 1e-3, (name, agg, value, honest[agg])


def test_a_judge_is_refused_there_is_no_message_to_read() -> None:
    with pytest.raises(ValueError, match="no message for a judge"):
        gym.make(ENV_ID, judge=lambda task, product, message: 1.0)


def test_best_variant_is_the_relevance_of_every_variant_maximised() -> None:
    """The ideal list's best variant, computed from the product and variant parts, is exactly
    the variant that :func:`relevance` (the verifier's own ``product_match``) ranks first, on
    every product of the asked category and of another one, for tasks of every difficulty."""
    from hiergym.envs.shopping.ranking import _category_docs, best_variant, relevance

    checked = 0
    for difficulty in ("easy", "hard"):
        env = gym.make(ENV_ID, split="test", difficulty=difficulty)
        base = env.unwrapped
        for task in list(base.tasks)[:4]:
            t = task.base
            docs = _category_docs(base.sandbox.db, t.category)[:40]
            other = next(d for d in base.tasks if d.base.category != t.category).base
            docs += _category_docs(base.sandbox.db, other.category)[:5]
            for doc in docs:
                want = min(
                    doc["variants"],
                    key=lambda v: (
                        -relevance(t, doc, v["options"]),
                        v["price"],
                        sorted(v["options"].items()),
                    ),
                )
                expected = (relevance(t, doc, want["options"]), dict(want["options"]))
                assert best_variant(t, doc) == expected, (t.task_id, doc["product_id"])
                checked += 1
        env.close()
    assert checked >= 300
