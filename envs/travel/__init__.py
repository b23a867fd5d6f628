"""Travel: TravelPlanner-style trip planning over a cached transport/hotel/POI sandbox, and
TravelPlanner itself (its database, queries, plan format and evaluation)."""

from hiergym.envs.registry import register_domain


def register() -> None:
    register_domain("hiergym/Travel-v0", "hiergym.envs.travel.env:TravelEnv")
    register_domain(
        "hiergym/TravelPlanner-v0", "hiergym.envs.travel.travelplanner.env:TravelPlannerEnv"
    )
