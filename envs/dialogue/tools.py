"""The assistant's tools in a conversation: the domain's own, plus ``message_user``.

``message_user(text)`` sends one message to the user; its result is the user's reply. Plain prose
(an action with no tool call in it) is sent the same way, so an LLM can simply talk. The user lives
in the episode state (``state.memory["user"]``, see :mod:`.user`); the tool only asks it for the
reply (``answer``), and the env records the exchange after the step. Rule-based replies are
computed every time (``cache="none"``: they are cheap and depend on the conversation); an LLM
user's are cached in the sandbox's tool cache under the conversation's fingerprint (its
``scope``), so a replayed run asks the model nothing.

Travel's ``submit`` gains a ``message`` (the final answer to the user, which the communication
level reads); shopping's already has one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hiergym.envs.tools import Tool, Toolbox, tool
from hiergym.errors import ToolError

MAX_MESSAGE_CHARS = 4000


@tool(cache="none")
def message_user(state: Any, text: str) -> str:
    """Send one message to the user (a question, a proposal, a confirmation); returns their reply.

    Args:
        text: the message; ask about one or several things, one message per turn.
    """
    if state.memory.get("replied"):
        raise ToolError("one message to the user per turn; wait for the reply")
    if not text.strip():
        raise ToolError("the message is empty")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ToolError(f"the message is {len(text):,} characters; keep it under 4,000")
    state.memory["replied"] = True
    return state.memory["user"].answer(text, state.db)


def cached_message_user() -> Tool:
    """``message_user`` for a user whose replies are cached (an LLM user): keyed by its scope."""
    return replace(message_user, cache="persistent", scope=lambda s: s.memory["user"].scope())


def _travel_submit() -> Tool:
    from hiergym.envs.travel.tools import ItineraryJSON

    def submit(state: Any, itinerary: ItineraryJSON, message: str) -> str:
        """Finish: submit the itinerary and tell the user about it. Ends the episode.

        Args:
            itinerary: {"days": [{"day", "date", "activities": [...], "accommodation"}], "total_cost"}.
            message: the final message to the user: the cities, the dates and the total cost.
        """
        return "submitted; the episode is over"

    submit.__annotations__ = {"itinerary": ItineraryJSON, "message": str, "return": str}
    return tool(submit, terminal=True, cache="none")


def chat_toolbox(domain_tools: Toolbox, domain: str, cached: bool = False) -> Toolbox:
    """The domain's tools with ``message_user`` first (and travel's submit with a message)."""
    tools = [cached_message_user() if cached else message_user]
    for name in domain_tools.tools:
        t = domain_tools[name]
        if domain == "travel" and name == "submit":
            t = _travel_submit()
        tools.append(t)
    return Toolbox(tools)
