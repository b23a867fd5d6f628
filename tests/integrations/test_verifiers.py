"""verifiers' own ``vf-eval`` on a hiergym env, against a fake OpenAI server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..fake_openai import completion
from ..fake_openai import fake_openai as serve_openai
from .fakes import ENV_ID, ScriptedBackend, oracle_plans

pytest.importorskip("verifiers")


@pytest.fixture
def fake_openai():
    backend = ScriptedBackend(oracle_plans(ENV_ID, "test", "easy"))

    def respond(body):
        messages = body["messages"]
        # the first request of each rollout decides its role: even rollouts play the oracle
        prompt = next(m["content"] for m in messages if m["role"] == "user")
        c = backend._one(messages, 0 if "beach" not in prompt else 1)
        return completion(c.text, c.tool_calls, prompt=5, completion_tokens=3, model=body["model"])

    with serve_openai(respond, models=("scripted",)) as server:
        yield server.url, server.requests


def test_vf_eval_runs_a_hiergym_env(fake_openai, tmp_path):
    url, requests = fake_openai
    vf_eval = Path(sys.executable).parent / "vf-eval"
    if not vf_eval.exists():
        vf_eval = shutil.which("vf-eval")
    out = tmp_path / "out"
    env = {**os.environ, "FAKE_KEY": "x", "VF_LOG_LEVEL": "WARNING"}
    args = json.dumps({"env": ENV_ID, "split": "test", "difficulty": "easy", "num_examples": 2})
    proc = subprocess.run(
        [str(vf_eval), "hiergym.integrations.verifiers", "-a", args, "-m", "scripted",
         "-b", url, "-k", "FAKE_KEY", "-n", "2", "-r", "1", "-s", "-o", str(out), "-d",
         "--disable-env-server", "-A"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = [
        json.loads(line) for p in out.rglob("results.jsonl") for line in p.read_text().splitlines()
    ]
    assert len(results) == 2, list(out.rglob("*"))
    # every rollout used the env's native tools (the schemas the env publishes) ...
    assert {t["function"]["name"] for t in requests[0]["tools"]} >= {"search", "submit"}
    # ... stepped through several turns, and got paid what the verdict says
    for r in results:
        assert r["reward"] == 1.0, r
        assert r.get("level_format", r.get("metrics", {}).get("level_format")) == 1.0
    assert len(requests) >= 2 * 3
