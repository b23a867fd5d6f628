"""``hiergym.dialogue.make(id, ...)``: the conversational envs as PettingZoo envs.

::

    from hiergym import dialogue

    env = dialogue.make("hiergym/ShoppingChat-v0", split="test", difficulty="hard")  # AEC
    par = dialogue.make("hiergym/TravelChat-v0", parallel=True)  # PettingZoo parallel API

Agents: ``assistant`` (tool calls, ``message_user`` or prose) and ``user`` (messages); see
:mod:`hiergym.envs.dialogue.aec`. The single-agent view with the rule-based user is
``gymnasium.make("hiergym/ShoppingChat-v0")``.
"""

from __future__ import annotations

from typing import Any

ENV_IDS = ("hiergym/ShoppingChat-v0", "hiergym/TravelChat-v0")


def make(env_id: str, *, parallel: bool = False, **kwargs: Any) -> Any:
    """The AEC env of a conversational id (``parallel=True``: PettingZoo's parallel conversion).

    ``kwargs`` go to the Gymnasium view underneath (split, difficulty, max_turns, aggregate, ...).
    """
    import hiergym.envs.dialogue
    from hiergym.envs.dialogue.aec import DialogueAEC
    from hiergym.errors import did_you_mean

    if env_id not in ENV_IDS:
        raise ValueError(
            f"no conversational env {env_id!r}{did_you_mean(env_id, ENV_IDS)}; "
            f"expected one of {list(ENV_IDS)}"
        )
    hiergym.envs.dialogue.register()  # idempotent; import hiergym registers it too
    env = DialogueAEC(env_id, **kwargs)
    if parallel:
        from pettingzoo.utils.conversions import aec_to_parallel

        return aec_to_parallel(env)
    return env
