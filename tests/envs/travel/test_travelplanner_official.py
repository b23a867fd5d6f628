"""Opt-in: the port against TravelPlanner's own evaluation code, check by check.

Point ``HIERGYM_TRAVELPLANNER_OFFICIAL`` at a checkout of OSU-NLP-Group/TravelPlanner (its
evaluation/, tools/ and utils/ are read; nothing of it is copied into hiergym) and, if the
current interpreter lacks what that code imports (pandas, numpy, requests, tqdm),
``HIERGYM_TRAVELPLANNER_OFFICIAL_PYTHON`` at one that has them. The official code then judges the
example plans and every mutation of tp_cases.py (about 4,400 plans; several minutes, since it
filters pandas frames per item) over the same database, with a flights table naming the
examples' flights, and every check of every plan must agree. Plans on which the official code
raises (a day without ``current_city``) are reported and left out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from hiergym.envs.travel.travelplanner import evaluate_plan, import_travelplanner, open_database

from . import tp_cases

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "travelplanner"
CHECKOUT = os.environ.get("HIERGYM_TRAVELPLANNER_OFFICIAL")
PYTHON = os.environ.get("HIERGYM_TRAVELPLANNER_OFFICIAL_PYTHON", sys.executable)
RUNNER = Path(__file__).with_name("official_travelplanner.py")

pytestmark = [
    pytest.mark.skipif(not CHECKOUT, reason="set HIERGYM_TRAVELPLANNER_OFFICIAL to a checkout"),
    pytest.mark.skipif(not (DATA / "distance.csv").is_file(), reason=f"no data at {DATA}"),
]


def test_every_check_agrees_with_travelplanners_own_code(tmp_path, capsys):
    checkout = Path(CHECKOUT or "")
    assert (checkout / "evaluation" / "commonsense_constraint.py").is_file(), checkout
    probe = subprocess.run([PYTHON, "-c", "import pandas, numpy, requests, tqdm"], check=False)
    if probe.returncode != 0:
        pytest.skip(f"{PYTHON} lacks pandas/numpy/requests/tqdm; set {PYTHON=!s} otherwise")
    data = tmp_path / "data"
    data.mkdir()
    for f in DATA.iterdir():
        (data / f.name).symlink_to(f)
    (data / "clean_Flights_2022.csv").write_text(tp_cases.example_flights(tp_cases.examples(DATA)))
    db = open_database(import_travelplanner(data))
    cases = list(tp_cases.cases(DATA, tp_cases.Reference(DATA)))
    items, out = tmp_path / "items.jsonl", tmp_path / "official.jsonl"
    items.write_text("".join(json.dumps({"query": c.query, "plan": c.plan}) + "\n" for c in cases))
    subprocess.run(
        [PYTHON, str(RUNNER), str(checkout), str(data), str(items), str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    official = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(official) == len(cases)
    agree, total, crashed, differ = Counter(), Counter(), 0, []
    for case, theirs in zip(cases, official, strict=True):
        if "error" in theirs:
            crashed += 1
            continue
        ours = evaluate_plan(case.query, case.plan, db)
        total["hard checks run"] += 1
        if (ours["hard"] is None) == (theirs["hard"] is None):
            agree["hard checks run"] += 1
        else:
            differ.append((case.idx, case.name, "hard checks run"))
        for part in ("commonsense", "hard"):
            if ours[part] is None or theirs[part] is None:
                continue
            for check, (ok, _) in ours[part].items():
                total[check] += 1
                if ok == theirs[part][check][0]:
                    agree[check] += 1
                else:
                    differ.append((case.idx, case.name, check, ok, theirs[part][check]))
    with capsys.disabled():
        print(f"\n{len(cases)} plans, {crashed} on which the official code raises (left out)")
        for check in total:
            print(f"  {check:40s} {agree[check]}/{total[check]}")
    assert not differ, differ[:10]
