"""TravelPlanner compatibility: import its database into a sandbox, serve its queries as an env,
and evaluate plans in its format with its 8 commonsense and 5 hard checks and its metrics
(Xie et al., 2024; OSU-NLP-Group/TravelPlanner).

    from hiergym.envs.travel.travelplanner import evaluate, import_travelplanner, open_database
    db = open_database(import_travelplanner("shared/data/travelplanner"))
    report = evaluate(plans, queries, db)

    env = gymnasium.make("hiergym/TravelPlanner-v0", data_dir=DIR, queries="queries.jsonl")
"""

from .database import TravelPlannerDB, open_database
from .evaluate import COMMONSENSE_CHECKS, HARD_CHECKS, evaluate, evaluate_plan
from .importer import import_travelplanner, main

__all__ = [
    "COMMONSENSE_CHECKS",
    "HARD_CHECKS",
    "TravelPlannerDB",
    "evaluate",
    "evaluate_plan",
    "import_travelplanner",
    "main",
    "open_database",
]
