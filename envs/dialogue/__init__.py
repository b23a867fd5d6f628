"""Conversational envs: a simulated user and a tool-using assistant, for shopping and travel.

``gym.make("hiergym/ShoppingChat-v0")`` is the single-agent view (the built-in rule-based user);
``hiergym.dialogue.make("hiergym/ShoppingChat-v0")`` the PettingZoo AEC env with agents ``user``
and ``assistant`` (``parallel=True`` for PettingZoo's parallel API).
"""

from hiergym.envs.registry import register_domain

ENV_IDS = {
    "hiergym/ShoppingChat-v0": "hiergym.envs.dialogue.env:ShoppingChatEnv",
    "hiergym/TravelChat-v0": "hiergym.envs.dialogue.env:TravelChatEnv",
}


def register() -> None:
    for env_id, env_class in ENV_IDS.items():
        register_domain(env_id, env_class)
