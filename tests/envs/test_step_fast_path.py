"""The cached step's fast path (issue 12): fewer JSON round trips, the same values, the same
isolation between envs, and an ``import hiergym`` that leaves SQLAlchemy and httpx unimported.

(orjson was tried for the parses and left out: it reads an integer past 64 bits as a float, so
the edge-value check would no longer see it.)"""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym

import hiergym.envs.tools as tools_module
from hiergym.envs.core import to_observation
from hiergym.envs.sandbox import CacheKey, Sandbox, ToolCache
from hiergym.envs.tools import Toolbox, ToolCall, parse_action, tool


def test_import_hiergym_imports_neither_sqlalchemy_nor_httpx():
    code = (
        "import sys, hiergym, gymnasium; "
        "print(sorted(m for m in ('sqlalchemy', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_opening_the_read_only_sandbox_needs_no_sqlalchemy():
    # The tool cache (a SQLAlchemy table) opens on the first call that may need it.
    code = (
        "import sys, gymnasium as gym, hiergym\n"
        "env = gym.make('hiergym/Shopping-v0', split='test', difficulty='easy')\n"
        "env.reset(seed=0)\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "False"


def _product(env: gym.Env) -> str:
    return env.unwrapped.sandbox.db.execute("SELECT id FROM products LIMIT 1").fetchone()[0]


def test_a_result_handed_to_one_env_aliases_nothing_another_env_or_the_cache_holds(shopping):
    other = gym.make("hiergym/Shopping-v0", split="test", difficulty="easy")
    shopping.reset(seed=0)
    other.reset(seed=0)
    assert shopping.unwrapped.sandbox is other.unwrapped.sandbox  # one shared memory cache
    action = json.dumps({"name": "view_product", "arguments": {"product_id": _product(shopping)}})
    obs1, _, _, _, info1 = shopping.step(action)
    obs2, _, _, _, info2 = other.step(action)  # answered from memory
    first, second = info1["results"][0], info2["results"][0]
    assert first.data == second.data and first.data is not second.data
    assert obs1 == obs2 == first.content == json.dumps(first.data)
    first.data["title"] = "edited by a caller"
    first.data["attributes"].append("stuffed")
    obs3, _, _, _, info3 = other.step(action)
    assert info3["results"][0].data == second.data and "stuffed" not in obs3
    assert info3["results"][0].data is not second.data


def test_a_string_result_from_memory_is_shown_as_it_is():
    sb = Sandbox("d", None, mode="replay", data_version="v")

    @tool
    def greet(state, who: str) -> str:
        """Greet."""
        return f'hello "{who}"\n'

    call = ToolCall("greet", {"who": "x"})
    fresh = sb.call_text(greet, call, lambda: greet.fn(None, who="x"))
    again = sb.call_text(greet, call, lambda: 1 / 0)
    assert fresh[0] == again[0] == 'hello "x"\n'
    assert again[1] == json.dumps('hello "x"\n')


def test_text_from_the_sql_cache_is_shown_as_json_would_render_it(tmp_path):
    # Another writer may store non-ASCII JSON: the observation must stay in the ASCII charset.
    cache = ToolCache(f"sqlite:///{tmp_path / 'c.sqlite'}")
    sb = Sandbox("d", None, mode="replay", cache=cache, data_version="v")

    @tool(cache="persistent")
    def name(state, q: str) -> dict:
        """Name."""
        return {}

    call = ToolCall("name", {"q": "x"})
    cache.put_text(CacheKey("d", "v", "name", call.canonical_arguments()), '{"n": "Zoë"}')
    value, text = sb.call_text(name, call, lambda: 1 / 0)
    assert value == {"n": "Zoë"} and text == '{"n": "Zo\\u00eb"}' and text.isascii()


def test_a_calls_json_forms_are_computed_once_and_equal_the_plain_ones():
    call = parse_action(ToolCall("t", {"b": [1, 2.5], "a": "é"}))[0]
    assert call.canonical_arguments() == tools_module.canonical_json({"b": [1, 2.5], "a": "é"})
    assert call.to_openai()["function"]["arguments"] == json.dumps({"b": [1, 2.5], "a": "é"})
    moved = call.with_id("call_9")
    assert moved.id == "call_9" and moved == ToolCall("t", call.arguments, "call_9")
    assert moved.canonical_arguments() == call.canonical_arguments()
    assert moved.to_openai()["function"]["arguments"] == call.arguments_json()


def test_remembered_argument_checks_never_confuse_values_with_the_same_json():
    @tool
    def t(state, xs: list[int], flag: bool = False) -> int:
        """T."""
        return 0

    box = Toolbox([t])
    assert box.check(ToolCall("t", {"xs": [1]})) is None
    # a tuple and a list share their JSON text; only the list is a JSON array
    assert box.check(ToolCall("t", {"xs": (1,)})).error == "invalid_arguments"
    assert box.check(ToolCall("t", {"xs": [1], "flag": 1})).error == "invalid_arguments"
    assert box.check(ToolCall("t", {"xs": [1], "flag": True})) is None
    assert box.check(ToolCall("t", {"xs": [1.0]})).error == "invalid_arguments"
    assert box.check(ToolCall("t", {"xs": [1]})) is None


def test_observations_skip_escaping_only_when_nothing_needs_it(shopping):
    assert to_observation("a\x00b\x7f") == "a?b?"
    assert to_observation("tab\tnl\n") == "tab\tnl\n"
    shopping.reset(seed=0)
    obs, *_ = shopping.step('{"name": "view_product", "arguments": {"product_id": "x\\u0001y"}}')
    assert "\x01" not in obs and obs.isascii()
