from __future__ import annotations

import math
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

from hiergym.envs.geometry.data import SCENES_PER_SPLIT
from hiergym.envs.geometry.oracle import solve
from hiergym.envs.geometry.scene import WORLD, rotation_angle_deg
from hiergym.envs.geometry.tasks import FAMILIES, GeometryTask, load_tasks
from hiergym.envs.geometry.tools import (
    depth_at,
    detect,
    load_scene,
    pixel_to_point,
    transform,
)
from hiergym.envs.geometry.units import AnswerError, parse_answer, parse_scalar
from hiergym.envs.geometry.verifier import PARTIAL_CAP, compare, mean_relative_accuracy
from hiergym.envs.tools import ToolCall
from hiergym.testing import oracle_actions, play

ENV_ID = "hiergym/Geometry-v0"


@pytest.fixture(scope="module")
def base():
    env = gym.make(ENV_ID, split="test", difficulty="hard")
    yield env.unwrapped
    env.close()


@pytest.fixture(scope="module")
def state(base):
    return SimpleNamespace(db=base.sandbox.db, memory={})


def all_tasks(base):
    db, key = base.sandbox.db, str(base.sandbox.db_path)
    return [
        t
        for split in ("train", "dev", "test")
        for d in ("easy", "medium", "hard")
        for t in load_tasks(db, key, split, d)
    ]


def test_scenes_have_5_to_20_objects_1_to_3_cameras_and_disjoint_splits(base):
    db = base.sandbox.db
    rows = db.execute("SELECT scene_id, split FROM scenes").fetchall()
    assert len(rows) == sum(SCENES_PER_SPLIT.values())
    for scene_id, _ in rows:
        scene = load_scene(db, scene_id)
        assert 5 <= len(scene.objects) <= 20, scene_id
        assert 1 <= len(scene.cameras) <= 3
        assert set(scene.frames) == {WORLD, "robot_base", *scene.cameras}
    split_of = dict(rows)
    tasks = all_tasks(base)
    assert all(split_of[t.scene_id] == t.split for t in tasks)
    assert {(t.family, t.difficulty) for t in tasks} == {
        (f, d) for f in FAMILIES for d in ("easy", "medium", "hard")
    }
    answers = [t.answer for t in tasks if t.answer_type == "bool"]
    assert 0.3 < sum(answers) / len(answers) < 0.7, "yes/no tasks are balanced"


def test_anchor_chain_through_the_tools_is_exact(base, state):
    """detect -> depth_at -> pixel_to_point -> transform lands on the top-face centre (< 10 um)."""
    checked = 0
    for task in all_tasks(base):
        if task.family != "point_transform":
            continue
        scene = load_scene(base.sandbox.db, task.scene_id)
        cam, obj = task.params["camera"], task.params["object"]
        args = {"scene": task.scene_id, "camera": cam}
        u, v = detect.fn(state, object=obj, **args)["centroid"]
        depth = depth_at.fn(state, u=u, v=v, **args)["depth"]
        point = pixel_to_point.fn(state, u=u, v=v, depth=depth, **args)["point"]
        world = transform.fn(state, task.scene_id, cam, WORLD, point)["point"]
        assert np.allclose(world, scene.objects[obj].anchor, atol=1e-5)
        checked += 1
    assert checked >= 100


def test_transforms_compose_and_invert(base, state):
    scene_id = all_tasks(base)[0].scene_id
    scene = load_scene(base.sandbox.db, scene_id)
    for a in scene.frames:
        for b in scene.frames:
            ab = np.array(transform.fn(state, scene_id, a, b)["matrix"])
            ba = np.array(transform.fn(state, scene_id, b, a)["matrix"])
            assert np.allclose(ab @ ba, np.eye(4), atol=1e-8)
            assert np.isclose(np.linalg.det(ab[:3, :3]), 1.0)


def test_units_convert_exactly():
    assert parse_scalar(0.10, "m", "length") == parse_scalar(10, "cm", "length") == 0.1
    assert parse_scalar("100 mm", None, "length") == pytest.approx(0.1, abs=1e-15)
    assert parse_scalar("2.5 L", None, "volume") == pytest.approx(0.0025, abs=1e-15)
    assert parse_scalar(math.pi, "rad", "angle") == pytest.approx(180.0, abs=1e-12)
    assert parse_answer("bool", "Yes", None) is True and parse_answer("bool", False, None) is False
    with pytest.raises(AnswerError, match="needs a unit"):
        parse_scalar(0.3, None, "length")
    with pytest.raises(AnswerError, match="unit of angle"):
        parse_scalar(0.3, "deg", "length")
    with pytest.raises(AnswerError, match="two different units"):
        parse_scalar("3 cm", "m", "length")
    with pytest.raises(AnswerError, match="proper rotation"):
        parse_answer(
            "pose", {"rotation": [[1, 0, 0], [0, 1, 0], [0, 0, -1]], "translation": [0, 0, 1]}, "m"
        )
    q = parse_answer(
        "pose", {"rotation": {"quaternion": [0, 0, 0, 1]}, "translation": [1, 2, 3]}, "cm"
    )
    assert np.allclose(q["rotation"], np.eye(3)) and q["translation"] == [0.01, 0.02, 0.03]


def _rz(deg):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _pose_task(rotation):
    answer = {"rotation": rotation.tolist(), "translation": [0.1, 0.2, 0.5]}
    return GeometryTask(
        "t", "test", "easy", "pose_estimation", "s", "q", "pose", answer, "cam", {}, (), 0.01
    )


def test_a_scaled_rotation_cannot_hide_its_error():
    """The orthonormality check allows 1e-3 of slack; a rotation 2 degrees off, scaled by
    1.0005, pushed the trace past 3 and measured 0 degrees of error (a pass within 1 degree).
    The submitted matrix is now compared as the nearest rotation."""
    truth = _rz(30.0) @ np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])
    task = _pose_task(truth)
    for scale in (1.0, 1.0005, 0.9995):
        off = (truth @ _rz(2.0)) * scale
        value = parse_answer(
            "pose", {"rotation": off.tolist(), "translation": [0.1, 0.2, 0.5]}, "m"
        )
        judged = compare(task, value)
        assert not judged.passed, scale
        assert judged.metrics["rotation_error_deg"] == pytest.approx(2.0, abs=1e-6)
    close = parse_answer(
        "pose",
        {"rotation": (truth @ _rz(0.5) * 1.0005).tolist(), "translation": [0.1, 0.2, 0.5]},
        "m",
    )
    assert compare(task, close).passed


def test_numbers_in_answer_strings_must_be_finite():
    """A number must be finite (a JSON number is checked); "1e999 m" parsed to inf and passed
    the format level."""
    with pytest.raises(AnswerError, match="finite"):
        parse_scalar("1e999 m", None, "length")


def test_one_unit_in_two_spellings_is_not_two_units():
    """ "10 centimeters" with unit="cm" was refused as two different units (a format failure for
    a right answer): units are compared by meaning, not by spelling."""
    assert parse_scalar("10 centimeters", "cm", "length") == pytest.approx(0.1, abs=1e-15)
    assert parse_scalar("90 deg", "degrees", "angle") == 90.0
    with pytest.raises(AnswerError, match="two different units"):
        parse_scalar("10 mm", "cm", "length")


def test_precision_is_full_within_tolerance_and_mra_outside():
    assert mean_relative_accuracy(0.0) == 1.0
    assert mean_relative_accuracy(0.07) == pytest.approx(0.9)  # fails only the 0.95 threshold
    assert mean_relative_accuracy(0.6) == 0.0
    task = GeometryTask(
        "t", "test", "easy", "distance_angle", "s", "q", "length", 1.0, None, {}, (), 0.01
    )
    assert compare(task, 1.009).passed and compare(task, 1.009).score == 1.0
    near = compare(task, 1.02)  # 2 cm off: outside 1 cm, but 2 % relative error
    assert not near.passed and near.score == pytest.approx(PARTIAL_CAP) and near.score < 1.0
    assert compare(task, 1.3).score == pytest.approx(PARTIAL_CAP * 0.4)  # 0.50..0.65 pass


def test_every_family_and_difficulty_is_solved_by_the_oracle():
    for difficulty in ("easy", "medium", "hard"):
        env = gym.make(ENV_ID, split="dev", difficulty=difficulty)
        base = env.unwrapped
        seen = set()
        for task in base.tasks:
            if task.family in seen:
                continue
            seen.add(task.family)
            base.reset(options={"task": task})
            out = play(env, oracle_actions(env), options={"task": task})
            assert out.verdict["reward"] == 1.0, (task.task_id, out.verdict)
        assert seen == set(FAMILIES)
        env.close()


def test_pose_oracle_uses_the_python_tool_and_is_centimetre_accurate(base, state):
    task = next(t for t in base.tasks if t.family == "pose_estimation")
    calls = solve(state, task)
    assert [c.name for c in calls][-2:] == ["python", "submit"]
    sub = calls[-1].arguments["answer"]
    assert np.linalg.norm(np.subtract(sub["translation"], task.answer["translation"])) < 0.01
    assert rotation_angle_deg(np.array(sub["rotation"]), np.array(task.answer["rotation"])) < 1.0


@pytest.mark.parametrize("bad", ["scene", "camera", "object"])
def test_bad_names_are_clear_error_observations(base, bad):
    base.reset(seed=0)
    scene = load_scene(base.sandbox.db, base.task.scene_id)
    camera = next(iter(scene.cameras))
    arguments = {"scene": scene.scene_id, "camera": camera, "object": "table"}
    if "table" not in scene.objects:
        arguments["object"] = next(iter(scene.objects))
    fragment = {
        "scene": "no scene 'geo-nowhere'",
        "camera": f"did you mean {camera!r}",
        "object": f"did you mean {arguments['object']!r}",
    }[bad]
    arguments[bad] = "geo-nowhere" if bad == "scene" else arguments[bad][:-1]
    obs, reward, terminated, truncated, info = base.step(ToolCall("detect", arguments))
    assert obs.startswith("error: ") and fragment in obs, obs
    assert not terminated and not truncated and reward == 0.0


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"u": -5.0, "v": 10.0}, "outside the"),
        ({"u": 1e300, "v": 10.0}, "finite number"),
        ({"u": "left", "v": 10.0}, "u must be number"),
        ({"u": 10.0}, "missing required argument 'v'"),
    ],
)
def test_bad_pixels_are_clear_error_observations(base, arguments, fragment):
    base.reset(seed=0)
    camera = next(iter(load_scene(base.sandbox.db, base.task.scene_id).cameras))
    call = ToolCall("depth_at", {"scene": base.task.scene_id, "camera": camera, **arguments})
    obs, _, terminated, _, info = base.step(call)
    assert obs.startswith("error: ") and fragment in obs and not terminated
    assert info["results"][0].ok is False


def test_wrong_scene_and_failed_calls_count_against_tool_use(base):
    base.reset(seed=1)
    calls = oracle_actions(base)
    foreign = ToolCall("list_objects", {"scene": "geo-train-000"})
    out = play(base, [foreign, foreign, foreign, "not json", *calls], seed=1)
    level = next(lv for lv in out.verdict["levels"] if lv["name"] == "tool_use")
    assert not level["passed"] and level["metrics"]["off_scene"] == 3
    assert {f["code"] for f in level["findings"]} >= {"parse_error", "off_scene"}


def test_a_correct_guess_is_flagged(base):
    base.reset(seed=4)
    calls = oracle_actions(base)
    out = play(base, calls[-1:], seed=4)
    grounding = _level(out, "grounding")
    assert out.verdict["first_failed"] == "grounding"
    assert grounding["findings"][0]["code"] == "guess"
    # a guess is not compared with the truth (right or not, it earns no precision)
    precision = _level(out, "precision")
    assert precision["score"] == 0.0 and precision["findings"][0]["code"] == "not_compared"


def _level(out, name):
    return next(lv for lv in out.verdict["levels"] if lv["name"] == name)


def test_task_round_trips_through_json(base):
    task = base.tasks.tasks[0]
    assert GeometryTask.from_json(task.to_json()) == task


def _point_task(base):
    task = next(t for t in base.tasks if t.family == "point_transform" and t.frame == "robot_base")
    return task, oracle_actions_for(base, task)


def oracle_actions_for(base, task):
    base.reset(options={"task": task})
    return oracle_actions(base)


def test_grounding_accepts_any_chain_of_frames():
    """The camera's extrinsics plus world -> robot_base ground a point as well as one transform."""
    env = gym.make(ENV_ID, split="test", difficulty="medium")
    base = env.unwrapped
    task, calls = _point_task(base)
    scene_id, camera = task.scene_id, task.params["camera"]
    measured = [c for c in calls if c.name != "transform"][:-1]
    chain = [
        ToolCall("get_camera", {"scene": scene_id, "camera": camera}),
        ToolCall("transform", {"scene": scene_id, "from_frame": "world", "to_frame": "robot_base"}),
    ]
    out = play(env, [*measured, *chain, calls[-1]], options={"task": task})
    assert out.verdict["reward"] == 1.0, out.verdict
    missing_link = play(env, [*measured, chain[0], calls[-1]], options={"task": task})
    grounding = _level(missing_link, "grounding")
    assert missing_link.verdict["first_failed"] == "grounding"
    assert [f["code"] for f in grounding["findings"]] == ["unsupported"]
    assert "linking" in grounding["findings"][0]["message"]
    env.close()


def test_a_depth_read_at_another_pixel_does_not_ground_the_anchor():
    env = gym.make(ENV_ID, split="test", difficulty="medium")
    base = env.unwrapped
    task, calls = _point_task(base)
    moved = [
        ToolCall(c.name, {**c.arguments, "u": c.arguments["u"] + 5}) if c.name == "depth_at" else c
        for c in calls
    ]
    out = play(env, moved, options={"task": task})
    messages = [f["message"] for f in _level(out, "grounding")["findings"]]
    assert any("anchor" in m for m in messages), out.verdict
    env.close()


def test_a_scene_id_with_surrounding_spaces_counts_as_the_scene(base):
    """The tools accept " geo-test-004 " (they strip the id) and answer for that scene, but the
    verifier compared ids exactly: every such call was off-scene and grounded nothing, failing
    a right, fully measured answer at tool_use."""
    base.reset(seed=2)
    calls = oracle_actions(base)
    padded = [
        ToolCall(c.name, {**c.arguments, "scene": f" {c.arguments['scene']} "})
        if "scene" in c.arguments
        else c
        for c in calls
    ]
    out = play(base, padded, seed=2)
    assert out.verdict["reward"] == 1.0, out.verdict
