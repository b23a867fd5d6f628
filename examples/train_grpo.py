"""Train on hiergym: SFT warm start on exported oracle trajectories, then TRL GRPO through the env.

    python examples/train_grpo.py                      # tiny model built in code, CPU, minutes
    python examples/train_grpo.py --model /path/to/qwen3-0.6b --sft-steps 200 --grpo-steps 500

Steps: (1) the oracle's episodes on train tasks, collected as rollouts and exported as SFT
conversations (``hiergym export --format sft``); (2) TRL ``SFTTrainer`` on them; (3) per-level
reward on held-out (test split) tasks; (4) TRL ``GRPOTrainer`` with
``hiergym.integrations.trl.environment_factory``, the aggregate as reward and every level logged;
(5) the per-level reward on the held-out tasks again, printed beside (3).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def held_out_levels(model: Any, tokenizer: Any, env_id: str, tasks: int, workdir: Path) -> dict:
    """Mean reward and mean score per level of greedy episodes on ``tasks`` test tasks."""
    from hiergym.agents import LLMAgent
    from hiergym.agents.transformers_backend import Transformers
    from hiergym.rollouts import collect

    path = workdir / "eval-model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    agent = LLMAgent(Transformers(str(path)), temperature=0.0, max_tokens=96)
    rows = collect(
        env_id, agent, tasks=tasks, group_size=1, split="test", difficulty="easy",
        env_kwargs={"max_turns": 4},
    )  # fmt: skip
    out = {"reward": sum(r["reward"] for r in rows) / len(rows)}
    for name in rows[0]["levels"]:
        out[name] = sum(r["levels"][name] for r in rows) / len(rows)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="hiergym/Shopping-v0")
    p.add_argument("--model", default=None, help="a local model folder (default: a tiny one)")
    p.add_argument("--sft-tasks", type=int, default=8)
    p.add_argument("--sft-steps", type=int, default=30)
    p.add_argument("--grpo-steps", type=int, default=2)
    p.add_argument("--eval-tasks", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

    from hiergym.agents import OracleAgent
    from hiergym.export import export
    from hiergym.integrations import trl as htrl
    from hiergym.rollouts import collect

    work = Path(args.out or tempfile.mkdtemp(prefix="hiergym-grpo-"))
    kw = {"split": "train", "difficulty": "easy"}
    if args.model:
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        model = AutoModelForCausalLM.from_pretrained(args.model)
    else:
        from hiergym.integrations.tiny import tiny_model_and_tokenizer

        model, tokenizer = tiny_model_and_tokenizer(args.env, episodes=4, **kw)

    # (1) oracle trajectories -> SFT data
    collect(args.env, OracleAgent(), tasks=args.sft_tasks, group_size=1, out=work / "oracle", **kw)
    export(work / "oracle", "sft", work / "data")
    sft = load_from_disk(str(work / "data" / "sft"))
    sft = sft.map(lambda r: {"tools": json.loads(r["tools"]), "messages": _parsed(r["messages"])})
    sft = sft.select_columns(["messages", "tools"])

    # (2) SFT warm start
    SFTTrainer(
        model=model,
        processing_class=tokenizer,
        train_dataset=sft,
        args=SFTConfig(
            output_dir=str(work / "sft"), max_steps=args.sft_steps, per_device_train_batch_size=2,
            learning_rate=5e-3 if not args.model else 1e-5, logging_steps=10, report_to=[],
            save_strategy="no", use_cpu=not args.model,
            max_length=4096 if args.model else 1536,  # the tiny run: the first turns
        ),
    ).train()  # fmt: skip

    before = held_out_levels(model, tokenizer, args.env, args.eval_tasks, work)

    # (4) GRPO through the environment factory
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=htrl.reward_functions(args.env, **kw),
        train_dataset=htrl.task_dataset(args.env, n=4 * max(1, args.grpo_steps), **kw),
        environment_factory=htrl.environment_factory(args.env, **kw),
        args=GRPOConfig(
            output_dir=str(work / "grpo"), max_steps=args.grpo_steps,
            per_device_train_batch_size=2, num_generations=2, max_completion_length=96,
            learning_rate=1e-3 if not args.model else 1e-6, logging_steps=1, report_to=[],
            reward_weights=htrl.reward_weights(args.env, **kw), save_strategy="no",
            use_cpu=not args.model, max_tool_calling_iterations=4,
        ),
    )  # fmt: skip
    trainer.train()
    logged = [
        {k: v for k, v in h.items() if k.startswith("rewards/")} for h in trainer.state.log_history
    ]
    after = held_out_levels(model, tokenizer, args.env, args.eval_tasks, work)
    print(f"{'held-out':<12}{'before':>10}{'after':>10}")
    for name in before:
        print(f"{name:<12}{before[name]:>10.3f}{after[name]:>10.3f}")
    result = {"before": before, "after": after, "train_log": [x for x in logged if x]}
    (work / "result.json").write_text(json.dumps(result, indent=1))
    return result


def _parsed(messages: list[dict]) -> list[dict]:
    """Dataset messages (tool-call arguments as JSON strings) back as chat-template input."""
    out = []
    for m in messages:
        msg = {"role": m["role"], "content": m.get("content") or ""}
        if m.get("tool_calls"):
            msg["tool_calls"] = [
                {
                    "type": "function",
                    "function": {
                        "name": c["function"]["name"],
                        "arguments": json.loads(c["function"]["arguments"]),
                    },
                }
                for c in m["tool_calls"]
            ]
        if m["role"] == "tool":
            msg["name"] = m.get("name") or ""
        out.append(msg)
    return out


if __name__ == "__main__":
    main()
