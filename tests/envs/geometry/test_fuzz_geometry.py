"""Arbitrary arguments to every geometry tool: always an observation, never a crash or a raise."""

from __future__ import annotations

import gymnasium as gym
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hiergym.envs.tools import ToolCall

ENV = gym.make("hiergym/Geometry-v0", split="test", difficulty="medium", max_turns=10_000_000)
ENV.reset(seed=0)
BASE = ENV.unwrapped
SCENE = BASE.task.scene_id
TOOLS = [
    t["function"]["name"]
    for t in BASE.toolbox.schemas()
    if t["function"]["name"] not in ("submit", "python")
]
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**30), 10**30)
names = st.sampled_from(
    ["cam_front", "cam_left", "cam_right", "world", "robot_base", "table", "mug", "bracket", ""]
) | st.text(max_size=30)
values = (
    numbers
    | names
    | st.none()
    | st.booleans()
    | st.lists(numbers, max_size=5)
    | st.sampled_from(["3d-3d", "2d-3d"])
)
keys = st.sampled_from(
    ["scene", "camera", "object", "u", "v", "depth", "from_frame", "to_frame", "point", "kind", "x"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tool=st.sampled_from(TOOLS),
    arguments=st.dictionaries(keys, values, max_size=6),
    own_scene=st.booleans(),
)
def test_arbitrary_arguments_never_crash(tool, arguments, own_scene):
    if own_scene:
        arguments = {**arguments, "scene": SCENE}
    obs, reward, terminated, truncated, info = BASE.step(ToolCall(tool, arguments))
    assert isinstance(obs, str) and not terminated
    result = info["results"][0]
    assert result.error != "tool_crash", obs
    if not result.ok:
        assert obs.startswith("error: ")


SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in BASE.toolbox.schemas()}
BY_TYPE = {
    "number": numbers,
    "string": names,
    "array": st.lists(numbers, max_size=5),
}


@st.composite
def well_typed_calls(draw):
    """Calls that pass the schema, so the tool body itself meets odd values."""
    tool = draw(st.sampled_from(TOOLS))
    params = SCHEMAS[tool]
    args = {}
    for name, schema in params["properties"].items():
        if name not in params["required"] and draw(st.booleans()):
            continue
        if "enum" in schema:
            args[name] = draw(st.sampled_from(schema["enum"]))
        else:
            # An optional parameter is JSON Schema's anyOf [T, null]: draw one of its branches.
            branch = draw(st.sampled_from(schema.get("anyOf", [schema])))
            if branch["type"] == "null":
                args[name] = None
                continue
            strategy = BY_TYPE[branch["type"]]
            if branch["type"] == "number":
                strategy = st.floats(-1e7, 1e7) | st.sampled_from([0.0, -0.0, 1e-300, 640.0])
            args[name] = draw(strategy)
    args["scene"] = SCENE
    return ToolCall(tool, args)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=well_typed_calls())
def test_well_typed_odd_values_never_crash(call):
    obs, _, terminated, _, info = BASE.step(call)
    result = info["results"][0]
    assert result.error != "tool_crash", (call, obs)
    assert not terminated and (result.ok or obs.startswith("error: "))
