"""TRL adapter: the env as a GRPOTrainer environment_factory, its tools and rewards."""

from __future__ import annotations

import inspect
import os

import pytest

pytest.importorskip("trl")

from hiergym.integrations import trl as htrl  # noqa: E402

from .fakes import ENV_ID  # noqa: E402

KW = {"split": "test", "difficulty": "easy"}


@pytest.fixture(scope="module")
def env_class():
    return htrl.environment_factory(ENV_ID, **KW)


def test_tools_render_the_schemas_the_env_publishes(env_class):
    from transformers.utils import get_json_schema

    env = env_class()
    published = {s["function"]["name"]: s["function"] for s in env.session.tool_schemas}
    methods = {
        n for n, _ in inspect.getmembers(env_class, inspect.isfunction) if not n.startswith("_")
    }
    assert methods == set(published) | {"reset"}  # TRL makes every public method a tool
    for name, fn in published.items():
        rendered = get_json_schema(getattr(env, name))["function"]
        assert rendered["description"] == fn["description"]
        props = fn["parameters"].get("properties", {})
        assert set(rendered["parameters"]["properties"]) == set(props)
        assert set(rendered["parameters"].get("required", [])) == set(
            fn["parameters"].get("required", [])
        )
        for arg, prop in props.items():
            assert rendered["parameters"]["properties"][arg]["description"].startswith(
                " ".join(prop["description"].split())
            )


def test_reset_tools_and_rewards_read_the_verdict(env_class):
    env = env_class()
    task_id = env.session.base.tasks.tasks[0].task_id
    prompt = env.reset(task_id=task_id, prompt=[{"role": "user", "content": ""}])
    assert env.session.info["task_id"] == task_id and prompt.startswith("Instruction")
    oracle = env.session.base.make_oracle()
    for call in oracle.plan(env.session.base.task):
        getattr(env, call.name)(**call.arguments)
    junk = env_class()
    junk.reset(task_id=task_id)
    assert junk.view_product(product_id="NOPE").startswith("error")
    assert "unexpected argument" in junk.search(query="x", colour="red")  # the env's own answer
    funcs = htrl.reward_functions(ENV_ID, **KW)
    names = [f.__name__ for f in funcs]
    assert names[0] == "hiergym_reward"
    assert names[1:] == [f"level_{n}" for n in env.session.level_names]
    scores = {f.__name__: f(completions=[None, None], environments=[env, junk]) for f in funcs}
    assert scores["hiergym_reward"] == [1.0, 0.0]
    assert all(v[0] == 1.0 for v in scores.values())
    # the junk episode never submitted: verified as truncated, and the verdict says why
    assert junk.session.verdict.first_failed == "format"
    assert htrl.reward_weights(ENV_ID, **KW) == [1.0] + [0.0] * len(env.session.level_names)


def test_submit_reward_scores_one_call_completions(env_class):
    env = env_class()
    task = env.session.base.tasks.tasks[0]
    submit = env.session.base.make_oracle().plan(task)[-1]
    reward = htrl.submit_reward(ENV_ID, **KW)
    text = (
        '<tool_call>{"name": "submit", "arguments": '
        + __import__("json").dumps(submit.arguments)
        + "}</tool_call>"
    )
    # without the tool results the plan's grounding is missing: a wrong answer, not a crash
    scores = reward(completions=[text, "no call at all"], task_id=[task.task_id] * 2)
    assert scores[1] == 0.0 and 0.0 <= scores[0] < 1.0
    with pytest.raises(ValueError, match="no level"):
        htrl.submit_reward(ENV_ID, level="formatt", **KW)


@pytest.mark.slow
def test_grpo_trains_through_the_environment_factory(tmp_path):
    import torch
    from trl import GRPOConfig, GRPOTrainer

    from hiergym.integrations.tiny import tiny_model_and_tokenizer

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    model, tok = tiny_model_and_tokenizer(ENV_ID, episodes=2, **KW)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    # A random tiny model earns 0 on every level, so GRPO's groups have no variance from hiergym's
    # rewards and the loss has no gradient: a length reward gives it one. (After 600 SFT steps,
    # ~3 min of CPU, the levels alone vary within groups: examples/train_grpo.py, seed 2, reward
    # std > 0 on 7 of 10 GRPO steps; test_train_example.py checks the levels that SFT learns.)
    def length(completions, **_):
        return [float(len(str(c))) / 1000 for c in completions]

    funcs = htrl.reward_functions(ENV_ID, **KW)
    args = GRPOConfig(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2, num_generations=2,
        max_completion_length=32, learning_rate=1e-2, logging_steps=1, report_to=[],
        use_cpu=True, save_strategy="no", max_tool_calling_iterations=2,
        reward_weights=htrl.reward_weights(ENV_ID, **KW) + [1.0],
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=model,
        processing_class=tok,
        args=args,
        reward_funcs=[*funcs, length],
        train_dataset=htrl.task_dataset(ENV_ID, n=4, **KW),
        environment_factory=htrl.environment_factory(ENV_ID, **KW),
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "rewards/hiergym_reward/mean" in h]
    assert len(logs) == 2
    for f in funcs:
        assert f"rewards/{f.__name__}/mean" in logs[0]
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())
