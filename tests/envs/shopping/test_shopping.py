from __future__ import annotations

import json
from types import SimpleNamespace

import gymnasium as gym
import pytest

from hiergym.envs.shopping import data
from hiergym.envs.shopping.oracle import recommendation
from hiergym.envs.shopping.tasks import ShoppingTask, load_tasks
from hiergym.envs.shopping.tools import fts_query, search, view_product
from hiergym.envs.shopping.verifier import product_match
from hiergym.testing import oracle_actions, play


@pytest.fixture(scope="module")
def base():
    env = gym.make("hiergym/Shopping-v0", split="test", difficulty="hard")
    yield env.unwrapped
    env.close()


def test_catalog_size_and_shape(base):
    db = base.sandbox.db
    assert db.execute("SELECT count(*) FROM products").fetchone()[0] >= 5000
    assert db.execute("SELECT count(DISTINCT category_path) FROM products").fetchone()[0] >= 20
    doc = json.loads(db.execute("SELECT doc FROM products LIMIT 1").fetchone()[0])
    assert {
        "title",
        "description",
        "category",
        "attributes",
        "options",
        "variants",
        "rating",
    } <= set(doc)
    assert all({"options", "price", "stock"} <= set(v) for v in doc["variants"])
    assert (
        db.execute("SELECT count(*) FROM products WHERE doc LIKE '%\"stock\":0%'").fetchone()[0]
        > 100
    )


def test_splits_are_disjoint_by_target_product(base):
    targets = {}
    for split in ("train", "dev", "test"):
        for difficulty in ("easy", "medium", "hard"):
            ids = {
                t.target_id
                for t in load_tasks(base.sandbox.db, str(base.sandbox.db_path), split, difficulty)
            }
            targets.setdefault(split, set()).update(ids)
    assert (
        not targets["train"] & targets["test"]
        and not targets["train"] & targets["dev"]
        and not targets["dev"] & targets["test"]
    )


def test_hard_tasks_have_distractors_sharing_all_but_one_attribute(base):
    for task in list(base.tasks)[:20]:
        sib = json.loads(
            base.sandbox.db.execute(
                "SELECT doc FROM products WHERE id=?", (task.sibling_id,)
            ).fetchone()[0]
        )
        shared = sum(a in sib["attributes"] for a in task.attributes)
        assert shared == len(task.attributes) - 1
        assert sib["product_type"] == task.product_type


def test_search_never_lets_agent_text_reach_fts_syntax(base):
    state = SimpleNamespace(db=base.sandbox.db, memory={})
    from hiergym.errors import ToolError

    for query in ["jacket OR", "NEAR(a b)", "x*", "a:b", "'; DROP TABLE products; --", "^title"]:
        out = search.fn(state, query=query)
        assert isinstance(out["results"], list)
    for wordless in ['"', "(((", "*:^"]:
        with pytest.raises(ToolError, match="no words"):
            search.fn(state, query=wordless)
    assert fts_query('rain "jacket" OR NOT') == '"rain" OR "jacket" OR "or" OR "not"'


def test_search_filters(base):
    state = SimpleNamespace(db=base.sandbox.db, memory={})
    out = search.fn(
        state, query="jacket", category="clothing > men", max_price=60, attribute="waterproof"
    )
    assert out["results"]
    for hit in out["results"]:
        page = view_product.fn(state, product_id=hit["product_id"])
        assert page["category"].startswith("Clothing > Men")
        assert "waterproof" in page["attributes"] and page["price"][0] <= 60
    assert search.fn(state, query="", category="Beauty")["more_pages"]


def test_oracle_reaches_one_on_every_split_and_difficulty():
    for split in ("train", "dev", "test"):
        for difficulty in ("easy", "medium", "hard"):
            env = gym.make("hiergym/Shopping-v0", split=split, difficulty=difficulty)
            for seed in range(3):
                env.reset(seed=seed)
                out = play(env, oracle_actions(env), seed=seed)
                assert out.verdict["reward"] == 1.0, (split, difficulty, seed, out.verdict)


def _task_and_doc(base, seed):
    base.reset(seed=seed)
    calls = oracle_actions(base)
    sub = calls[-1].arguments
    doc = json.loads(
        base.sandbox.db.execute(
            "SELECT doc FROM products WHERE id=?", (sub["product_id"],)
        ).fetchone()[0]
    )
    return base.task, doc, dict(sub["options"]), calls


def test_product_level_is_the_webshop_formula(base):
    task, doc, options, _ = _task_and_doc(base, 3)
    n = len(task.attributes) + len(task.options) + 1
    assert product_match(task, doc, options)[0] == 1.0
    wrong = dict(options)
    name, value = task.options[0]
    wrong[name] = next(v for v in doc["options"][name] if v != value)
    score, findings = product_match(task, doc, wrong)
    assert score == pytest.approx((n - 1) / n)
    assert [f.code for f in findings] == ["wrong_option"]


def test_out_of_stock_variant_does_not_count_as_the_option(base):
    task, doc, options, _ = _task_and_doc(base, 3)
    for v in doc["variants"]:
        if v["options"] == options:
            v["stock"] = 0
    score, findings = product_match(task, doc, options)
    assert score < 1.0 and "out_of_stock" in [f.code for f in findings]


def test_response_rubric_catches_false_claims_and_prices(base):
    from hiergym.envs.shopping.verifier import ResponseLevel
    from hiergym.rewards.levels import VerifyContext

    task, doc, options, _ = _task_and_doc(base, 5)
    level = ResponseLevel()

    def judge(message):
        ctx = VerifyContext(None, task, {"product": doc, "options": options, "message": message})
        return level.check(ctx)

    assert judge(recommendation(task, doc, options)).score == 1.0
    price = next(v["price"] for v in doc["variants"] if v["options"] == options)
    lie = recommendation(task, doc, options).replace(f"${price:.2f}", f"${price - 5:.2f}")
    result = judge(lie)
    assert not result.passed and {"false_price", "rubric_miss"} <= {f.code for f in result.findings}
    vocab = [
        a
        for c in data.load_vocabulary()["categories"]
        if c["path"] == doc["category"]
        for a in c["attributes"]
    ]
    false_attr = next(a for a in vocab if a not in doc["attributes"])
    claim = judge(recommendation(task, doc, options) + f" It is also {false_attr}.")
    # one false statement makes the recommendation worthless, whatever else it gets right
    assert any(f.code == "false_claim" for f in claim.findings) and claim.score == 0.0
    assert judge("Buy it.").score < 0.5


def test_llm_judge_hook_is_blended(base):
    env = gym.make(
        "hiergym/Shopping-v0",
        split="test",
        difficulty="hard",
        judge=lambda task, product, message: 0.5,
    )
    env.reset(seed=5)
    out = play(env, oracle_actions(env), seed=5)
    response = out.verdict["levels"][-1]
    assert response["metrics"] == {"rubric": 1.0, "judge": 0.5} and response["score"] == 0.75


def test_a_broken_judge_is_a_verifier_error():
    from hiergym.errors import VerifierError

    env = gym.make("hiergym/Shopping-v0", judge=lambda *a: 7.0)
    env.reset(seed=0)
    with pytest.raises(VerifierError, match="judge returned 7.0"):
        play(env, oracle_actions(env), seed=0)


def test_task_round_trips_through_json(base):
    task = base.tasks.tasks[0]
    assert ShoppingTask.from_json(task.to_json()) == task
