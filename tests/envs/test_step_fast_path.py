"""The cached step's fast path (issue 12): fewer JSON round trips, the same values, the same
isolation between envs, and an ``import hiergym`` that leaves SQLAlchemy and httpx unimported.

orjson, where installed, parses action texts and remembered results only where its value is
json's (it reads an integer past 64 bits as a float: such texts go to json, so the edge-value
check still sees the integer); the tests below hold both to json's values and exceptions."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import pytest

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


JSON_TEXTS = [
    '{"name": "t", "arguments": {"a": 1, "b": [1.5, -0.0, 1e-7, 1e16], "c": null}}',
    '{"n": 123456789012345678901234567890}',  # past 64 bits: orjson would say 1.23e29
    "[18446744073709551615, 18446744073709551616, -9223372036854775809]",
    # below -2**63 alone: orjson reads a float of magnitude < 2**64 (it was returned as such)
    '{"name": "t", "arguments": {"quantity": -9223372036854775809}}',
    "[-9223372036854775808, -9223372036854775809, -18446744073709551615]",
    '"digits in a string: 12345678901234567890123"',
    "[1e400, -1e400, NaN, Infinity, -Infinity]",  # json only
    '"\\ud83d"',  # a lone surrogate escape: json only
    '"\\ud83d\\ude00 \\u00e9 \\u0000"',
    '{"a": 1, "a": 2}',
    "\ufeff{}",
    '{"a": "\x01"}',
    "[1,]",
    "{'a': 1}",
    "",
    "  [1] x",
    "[" * 3000 + "]" * 3000,
]


def _outcome(parse, text):
    try:
        value = parse(text)
    except RecursionError:
        return ("RecursionError",)
    except ValueError as e:
        return (type(e).__name__, str(e))
    return ("ok", repr(value), json.dumps(value, default=str))  # repr tells 1 from 1.0


def test_fast_json_parses_to_jsons_values_and_raises_jsons_errors():
    for text in JSON_TEXTS:
        assert _outcome(tools_module.loads, text) == _outcome(json.loads, text), text
        parse = tools_module.fast_json_loader(text)
        assert _outcome(parse, text) == _outcome(json.loads, text), text
    big = tools_module.loads('{"n": 123456789012345678901234567890}')["n"]
    assert type(big) is int and big == 123456789012345678901234567890


def test_the_reused_encoders_write_jsons_text_and_raise_its_errors():
    class Opaque:
        def __str__(self):
            return "opaque"

    loop: dict = {}
    loop["self"] = loop
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    values = [
        {"b": [1, 2.5, float("nan"), -0.0, (1, 2)], "a": "\u00e9\ud800\n", "c": {"z": None}},
        "x",
        12,
        [],
        {"k": Opaque()},
        {1: "int key"},
        loop,
        deep,
    ]
    for value in values:
        for ours, theirs in (
            (
                tools_module.canonical_json,
                lambda v: json.dumps(
                    v, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str
                ),
            ),
            (tools_module._PLAIN, json.dumps),
        ):
            assert _encoded(ours, value) == _encoded(theirs, value)


def _encoded(encode, value):
    try:
        return ("ok", encode(value))
    except (TypeError, ValueError, RecursionError) as e:
        return (type(e).__name__, str(e))


ACTIONS = [
    '{"name": "view_product", "arguments": {"product_id": "B01"}}',
    '{"name": "search", "arguments": {"query": "red \\u00e9", "filters": {"colors": ["red"]}}}',
    '<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call>'
    '<tool_call>{"name": "b", "arguments": {"y": [1, 2]}}</tool_call>',
    'I will call ```json\n{"name": "a", "arguments": {"n": 123456789012345678901234567890}}\n```',
    '{"name": "a", "arguments": "{\\"x\\": NaN}", "id": "mine"}',
]


def test_a_remembered_action_text_gives_equal_calls_that_share_nothing_mutable():
    for text in ACTIONS:
        tools_module._PARSED.pop(text, None)
        first = parse_action(text)
        assert text in tools_module._PARSED
        again = parse_action(text)
        assert repr(again) == repr(first)  # repr: NaN != NaN, yet the calls are the same
        for a, b in zip(first, again, strict=True):
            assert a.canonical_arguments() == b.canonical_arguments()
            assert a.arguments_json() == b.arguments_json() == json.dumps(b.arguments)
            assert a.arguments is not b.arguments
            for key, value in b.arguments.items():
                if isinstance(value, dict | list):
                    assert value is not a.arguments[key]
    # a caller that edits its call's arguments changes no later call made from the same text
    text = ACTIONS[1]
    call = parse_action(text)[0]
    call.arguments["filters"]["colors"].append("blue")
    call.arguments["query"] = "edited"
    assert parse_action(text)[0].arguments == {
        "query": "red \u00e9",
        "filters": {"colors": ["red"]},
    }


def test_an_unparsable_text_is_not_remembered_and_fails_alike_each_time():
    text = '{"name": "a", "arguments": [1]}'
    messages = []
    for _ in range(2):
        try:
            parse_action(text)
        except tools_module.ActionParseError as e:
            messages.append(str(e))
    assert len(messages) == 2 and messages[0] == messages[1]
    assert text not in tools_module._PARSED


def test_a_remembered_result_past_64_bits_or_not_finite_comes_back_exactly():
    sb = Sandbox("d", None, mode="replay", data_version="v")

    @tool
    def edge(state, k: str) -> dict:
        """Edge."""
        return {"big": 2**70, "nan": float("nan"), "s": "\ud800", "f": 0.1}

    call = ToolCall("edge", {"k": "x"})
    fresh, _ = sb.call_text(edge, call, lambda: edge.fn(None, k="x"))
    hit, text = sb.call_text(edge, call, lambda: 1 / 0)
    assert sb.stats["memory"] == 1
    assert type(hit["big"]) is int and hit["big"] == 2**70 and hit["nan"] != hit["nan"]
    assert hit["s"] == "\ud800" and hit["f"] == 0.1 and text == json.dumps(fresh)


def test_the_fast_constructors_make_the_dataclasses_own_values_with_every_field():
    import dataclasses

    from hiergym.envs.core import Turn, _made_turn
    from hiergym.envs.tools import ToolResult, _made_call, made_result

    call = _made_call("t", {"a": [1]}, "call_0")
    result = made_result("t", False, "error: x", None, "tool_error", "call_0")
    turn = _made_turn(3, "text", (call,), (result,))
    made = {
        ToolCall: (call, ToolCall("t", {"a": [1]}, "call_0")),
        ToolResult: (result, ToolResult("t", False, "error: x", None, "tool_error", "call_0")),
        Turn: (turn, Turn(3, "text", (call,), (result,))),
    }
    for cls, (fast, plain) in made.items():
        assert type(fast) is cls and not hasattr(fast, "__dict__")  # slots, as cls(...) makes
        for f in dataclasses.fields(cls):  # an unset slot raises AttributeError
            assert getattr(fast, f.name) == getattr(plain, f.name), f.name
        assert fast == plain and repr(fast) == repr(plain)
        with pytest.raises(dataclasses.FrozenInstanceError):
            fast.name = "changed"
        with pytest.raises(dataclasses.FrozenInstanceError):
            fast.extra = 1  # no attribute beyond the fields (and the call's JSON forms)


def test_a_python_call_gets_its_arguments_json_round_trip_and_a_copy_of_its_own():
    class Text(str):
        pass

    cases = [
        {"a": "x", "b": 1, "c": 2.5, "d": True, "e": None, "f": float("nan"), "g": 2**70},
        {"a": "\ud800", "b": -0.0, "c": float("inf")},
        {"a": [1, (2, 3)], "b": {"c": 1}},
        {"a": Text("sub"), "b": True},
        {1: "int key", "b": 1},
    ]
    for arguments in cases:
        call = ToolCall("t", arguments)
        parsed = parse_action(call)[0]
        expected = json.loads(json.dumps(arguments))
        assert repr(parsed.arguments) == repr(expected)
        assert [type(v) for v in parsed.arguments.values()] == [type(v) for v in expected.values()]
        assert parsed.arguments is not arguments
        assert parsed.arguments_json() == json.dumps(arguments)
    arguments = {"q": "shoes"}
    parsed = parse_action(ToolCall("t", arguments))[0]
    arguments["q"] = "edited by the caller"
    assert parsed.arguments == {"q": "shoes"}


def test_the_call_cap_holds_for_a_text_sent_again():
    """A text with more calls than an action may run is refused every time it is sent: the
    memo of parsed texts must not answer it (it did: the first send raised, the second ran all
    nine calls)."""
    from hiergym.envs.tools import MAX_CALLS_PER_ACTION, ActionParseError, parse_action

    text = "".join(
        f'<tool_call>{{"name": "search", "arguments": {{"query": "q{i}"}}}}</tool_call>'
        for i in range(MAX_CALLS_PER_ACTION + 1)
    )
    for _ in range(3):
        with pytest.raises(ActionParseError, match="tool calls in one action"):
            parse_action(text)


def test_the_records_pickle_copy_and_compare_as_values_their_json_forms_no_part_of_it():
    import copy
    import dataclasses
    import pickle

    from hiergym.envs.core import Turn, _made_turn
    from hiergym.envs.tools import ToolResult, made_result

    call = parse_action('{"name": "t", "arguments": {"a": [1, {"b": null}], "c": "x"}}')[0]
    assert call.canonical_arguments() and call.arguments_json()  # both forms kept on the call
    result = made_result("t", True, "{}", {"k": [1]}, None, call.id)
    turn = _made_turn(0, "text", (call,), (result,))
    plain_call = ToolCall("t", {"a": [1, {"b": None}], "c": "x"}, "call_0")
    assert call == plain_call and hash(result.name) == hash(plain_call.name)
    for value in (call, result, turn):
        for twin in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
            assert twin == value and repr(twin) == repr(value) and type(twin) is type(value)
    assert dataclasses.asdict(call) == {"name": "t", "arguments": call.arguments, "id": "call_0"}
    assert dataclasses.asdict(result)["data"] == {"k": [1]}
    assert dataclasses.replace(turn, index=4) == Turn(4, "text", (call,), (result,))
    assert dataclasses.replace(call, id="z").canonical_arguments() == call.canonical_arguments()
    deep = copy.deepcopy(turn)
    assert deep.results[0].data is not result.data  # a deep copy shares no mutable value
    with pytest.raises(TypeError):  # a frozen record of a dict is unhashable, as before
        hash(ToolResult("t", True, "x", {"k": 1}))


FLAT_ARGUMENTS = [
    {},
    {"product_id": "B07XYZ1234"},
    {"q": 'a "quoted" \\ back\nslash\t\u00e9\u4e2d\U0001f600\ud800\x7f\x00\x1f/'},
    {"zeta": 1, "alpha": -2, "Mid": 0, "\u00e9": True, "a b": False, "": None},
    {"n": 10**18 - 1, "m": -(10**18) + 1, "o": 2**31},
    {"f": 0.1, "g": -0.0, "h": 1e16, "i": 1e-07, "j": 5e-324, "k": 1.7976931348623157e308},
    {"f": 2.5, "s": "x", "b": True, "z": None, "i": 3},
    {"b": "1", "a": "2", "B": "3", "_": "4", "aa": "5", "a\u0301": "6"},
]
NOT_FLAT_ARGUMENTS = [
    {"f": float("nan")},
    {"f": float("inf")},
    {"f": -float("inf")},
    {"n": 10**18},
    {"n": -(10**18)},
    {"n": 2**70},
    {"l": [1]},
    {"d": {}},
    {"t": (1,)},
    {1: "int key"},
    {"s": type("Text", (str,), {})("sub")},
    {"i": type("Int", (int,), {})(1)},
    ["a"],
    "text",
]


def test_flat_arguments_are_written_as_json_writes_them():
    """_flat_forms writes a flat call's two JSON forms itself (no encoder set up per call): they
    must be json's texts, byte for byte, and it must decline every value it does not write."""
    for arguments in FLAT_ARGUMENTS:
        assert tools_module._flat_forms(arguments) == (
            json.dumps(arguments),
            json.dumps(
                arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str
            ),
        ), arguments
        call = parse_action(ToolCall("t", arguments))[0]
        assert call.arguments_json() == json.dumps(arguments)
        assert call.canonical_arguments() == tools_module.canonical_json(arguments)
    for arguments in NOT_FLAT_ARGUMENTS:
        assert tools_module._flat_forms(arguments) is None, arguments


def test_a_python_calls_recorded_action_is_its_repr():
    class Loud(ToolCall):
        pass

    class Name(str):
        def __repr__(self) -> str:
            return "Name!"

    looped: dict = {"x": 1}
    selfish = ToolCall("t", looped)
    looped["me"] = selfish  # a call inside its own arguments: repr's guard writes "..."
    for arguments in [*FLAT_ARGUMENTS, *NOT_FLAT_ARGUMENTS[:-2]]:
        for call in (ToolCall("t", arguments), ToolCall("t", arguments, "id_1"), Loud("t")):
            assert tools_module.action_repr(call) == repr(call)
    for odd in (selfish, ToolCall(Name("t"), {"a": 1}), ToolCall("t", {"a": 1}, 7), {"a": 1}):
        assert tools_module.action_repr(odd) == repr(odd)


def test_a_python_call_without_an_id_is_named_for_its_turn_and_the_agents_call_is_untouched(
    shopping,
):
    shopping.reset(seed=0)
    product = _product(shopping)
    sent = ToolCall("view_product", {"product_id": product})
    for turn in range(3):
        _, _, _, _, info = shopping.step(sent)
        assert info["results"][0].call_id == f"call_{turn}_0"
        assert info["new_messages"][0]["tool_calls"][0]["id"] == f"call_{turn}_0"
    assert sent.id == "" and sent == ToolCall("view_product", {"product_id": product})
    assert not hasattr(sent, "_json") and not hasattr(sent, "_canonical")  # nothing kept on it
    named = parse_action([ToolCall("a", {}), ToolCall("b", {}, "mine"), {"name": "c"}], turn=5)
    assert [c.id for c in named] == ["call_5_0", "mine", "call_2"]
    assert [c.id for c in parse_action([ToolCall("a", {}), {"name": "c"}])] == ["", "call_1"]


def _transcript(env_ids: list[str]) -> list[str]:
    """repr of every step's outputs, of the turns and of the message log, over episodes of the
    oracle and random agents (every third of their calls sent as a ToolCall), junk actions and
    Python calls of every shape."""
    from hiergym.agents import load

    junk = [
        "", "not json", '{"name": "nope", "arguments": {}}', '{"arguments": {}}', "[]",
        '{"name": "search", "arguments": {"query": 5}}', '<tool_call>{"name": "search"}',
        ToolCall("search", {"query": ("a", "b")}), ToolCall("nope", {}),
        ToolCall("search", {1: "x"}), ToolCall("search", {"query": "q", "n": [1, {"a": None}]}),
        ToolCall("search", {"query": "\ud800"}), ToolCall("search", {"query": float("nan")}),
        {"tool_calls": [{"id": "c1", "function": {"name": "search", "arguments": "{}"}}]},
        '```json\n{"name": "search", "arguments": {"query": "tea"}}\n```',
        'I call {"name": "search", "arguments": {"query": "mug"}} now', 12345, None,
        ToolCall("search", {"query": "shoes"}, id="mine"),
        '{"name": "search", "arguments": {"query": "q", "n": 99999999999999999999999}}',
        '{"name": "search", "arguments": {"query": 1e400}}', "x" * 40000,
    ]  # fmt: skip
    out: list[str] = []
    for env_id in env_ids:
        env = gym.make(env_id, split="test", difficulty="easy", max_turns=12)
        for agent_name in ("oracle", "random", "junk"):
            for seed in range(4):
                obs, info = env.reset(seed=seed)
                out.append(repr((obs, info)))
                agent = None if agent_name == "junk" else load(agent_name)
                if agent is not None:
                    agent.bind(env)
                    if hasattr(agent, "reset"):
                        agent.reset(seed)
                done, k = False, 0
                while not done:
                    action = junk[(k + seed) % len(junk)] if agent is None else agent.act(obs, info)
                    if agent is not None and k % 3 == 1 and isinstance(action, str):
                        try:
                            sent = json.loads(action)
                            action = ToolCall(sent["name"], sent.get("arguments", {}))
                        except (ValueError, KeyError, TypeError):
                            pass
                    obs, reward, terminated, truncated, info = env.step(action)
                    out.append(repr((obs, reward, terminated, truncated, info)))
                    done, k = terminated or truncated, k + 1
                u = env.unwrapped
                out.append(repr((u.trajectory.turns, u.messages, u.trajectory.submission)))
        env.close()
    return out


def test_the_fast_paths_give_the_transcript_of_the_plain_constructors_and_json(monkeypatch):
    """The step's fast paths (records filled through their mutable twins, the parser's marker
    and JSON forms, flat arguments written without json's encoder, a Python call's repr written
    directly, the parser's memo) against the plain dataclass constructors, json and repr, over
    hundreds of steps of two domains: the same observations, infos, turns and message logs."""
    import hiergym.envs.core as core_module

    env_ids = ["hiergym/Shopping-v0", "hiergym/Travel-v0"]
    tools_module._PARSED.clear()
    fast = _transcript(env_ids)
    assert len(fast) > 250
    monkeypatch.setattr(  # the plain constructor; the JSON forms are left to be computed
        tools_module,
        "_made_call",
        lambda name, arguments, call_id, *_, **__: ToolCall(name, arguments, call_id),
    )
    monkeypatch.setattr(
        tools_module,
        "_parsed_call",
        lambda name, arguments, call_id, *_: ToolCall(name, arguments, call_id),
    )
    monkeypatch.setattr(tools_module, "made_result", tools_module.ToolResult)
    monkeypatch.setattr(core_module, "_made_turn", core_module.Turn)
    monkeypatch.setattr(core_module, "action_repr", repr)
    monkeypatch.setattr(tools_module, "_flat_forms", lambda arguments: None)
    monkeypatch.setattr(tools_module, "PARSED_TEXT_CHARS", -1)  # nothing remembered
    tools_module._PARSED.clear()
    plain = _transcript(env_ids)
    assert not tools_module._PARSED
    assert len(plain) == len(fast)
    for i, (a, b) in enumerate(zip(fast, plain, strict=True)):
        assert a == b, f"entry {i} differs"
