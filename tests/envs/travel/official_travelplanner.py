"""Run TravelPlanner's own evaluation code (a user's checkout of OSU-NLP-Group/TravelPlanner) on
(query, plan) items, for the opt-in comparison in test_travelplanner_official.py.

    python official_travelplanner.py CHECKOUT DATA_DIR ITEMS.jsonl OUT.jsonl

CHECKOUT holds the repository's evaluation/, tools/ and utils/; DATA_DIR TravelPlanner's database
files in hiergym's layout (the CSVs side by side, optionally a flights CSV). The script copies the
three code folders into a temporary folder, lays the data out where that code reads it
(../database/<table>/<file>.csv), stubs ``gradio`` (utils/func.py imports it for its annotation
UI, which evaluation never uses) and writes, per item, every check's ``[ok, why]`` as the official
``evaluation()`` functions return them (``hard`` only when TravelPlanner runs the hard checks), or
``{"error": ...}`` where the official code raises. Needs what that code imports (pandas,
numpy, requests, tqdm: its requirements.txt, less gradio); nothing of the
checkout is copied into hiergym.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path

LAYOUT = {
    "accommodations/clean_accommodations_2022.csv": "clean_accommodations_2022.csv",
    "attractions/attractions.csv": "attractions.csv",
    "restaurants/clean_restaurant_2022.csv": "clean_restaurant_2022.csv",
    "googleDistanceMatrix/distance.csv": "distance.csv",
    "background/citySet_with_states.txt": "citySet_with_states.txt",
}
FLIGHT_HEADER = (
    "Flight Number,Price,DepTime,ArrTime,ActualElapsedTime,FlightDate,OriginCityName,"
    "DestCityName,Distance\n"
)


def _plain(value):  # numpy bools and numbers -> JSON
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def main(checkout: str, data_dir: str, items_path: str, out_path: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="tp-official-"))
    for sub in ("evaluation", "tools", "utils"):
        shutil.copytree(Path(checkout) / sub, work / sub)
    data = Path(data_dir)
    for target, name in LAYOUT.items():
        (work / "database" / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data / name, work / "database" / target)
    flights = sorted(p for p in data.glob("*.csv") if "flight" in p.name.lower())
    (work / "database" / "flights").mkdir(parents=True, exist_ok=True)
    target = work / "database" / "flights" / "clean_Flights_2022.csv"
    if flights:
        shutil.copy(flights[0], target)
    else:
        target.write_text(FLIGHT_HEADER)
    sys.modules.setdefault("gradio", types.ModuleType("gradio"))
    sys.path.insert(0, str(work))
    sys.path.insert(0, str(work / "evaluation"))
    os.chdir(work / "evaluation")
    import commonsense_constraint
    import hard_constraint

    out = []
    for line in Path(items_path).read_text().splitlines():
        item = json.loads(line)
        query, plan = item["query"], item["plan"]
        try:
            commonsense = commonsense_constraint.evaluation(query, plan)
            hard = None
            if (
                commonsense["is_not_absent"][0]
                and commonsense["is_valid_information_in_sandbox"][0]
            ):
                hard = hard_constraint.evaluation(query, plan)
            out.append({"commonsense": _plain(commonsense), "hard": _plain(hard)})
        except Exception as e:  # the official code crashes on some plans
            out.append({"error": f"{type(e).__name__}: {e}"})
    Path(out_path).write_text("".join(json.dumps(r) + "\n" for r in out))


if __name__ == "__main__":
    main(*sys.argv[1:5])
