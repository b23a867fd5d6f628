"""The Gymnasium view of the conversation envs: the assistant is the agent, a simulated user the env.

Wiring only: the rules live in slots.py (what the user holds), user.py (how it answers),
verifier.py and oracle.py. Each env subclasses its domain's env, so the sandbox, the tools, the
tasks' ground truth and the domain oracle are the domain's own.
"""

from __future__ import annotations

from typing import Any

from hiergym.envs.core import EpisodeState, TaskSet
from hiergym.envs.shopping.env import ShoppingEnv
from hiergym.envs.tools import MAX_ACTION_CHARS, ActionParseError, Toolbox, ToolCall, parse_action
from hiergym.envs.travel.env import TravelEnv
from hiergym.rewards.levels import HierarchicalVerifier

from . import attacks, oracle, slots, tools, verifier
from . import user as users

_CHAT_TASKS: dict[tuple[str, str, str, str], TaskSet] = {}

INSTRUCTIONS = (
    "You are the assistant. Talk to the user with message_user (or plain text, which is sent to "
    "them); use the tools to look things up; finish with submit, whose message is your final "
    "answer to the user. Ask for what you need, once."
)


def looks_like_prose(action: Any) -> bool:
    """Plain text with no tool call in it: a message to the user, not a broken call."""
    if not isinstance(action, str) or not action.strip() or len(action) > MAX_ACTION_CHARS:
        return False
    if "{" in action or "<tool_call" in action:
        return False
    try:
        parse_action(action)
    except ActionParseError:
        return True
    return False


class ChatEnvMixin:
    """A domain env turned into a conversation (see :class:`ShoppingChatEnv`)."""

    domain: str
    sandbox: Any
    state: Any
    trajectory: Any

    def __init__(self, *args: Any, user: Any = "rule", judge: Any = None, **kwargs: Any):
        self.user_kind = user
        self.chat_judge = judge
        super().__init__(*args, **kwargs)

    # ---- hooks ---------------------------------------------------------------------------

    def make_toolbox(self) -> Toolbox:
        cached = users.caches_replies(self.user_kind)
        return tools.chat_toolbox(super().make_toolbox(), self.domain, cached=cached)

    def chat_task(self, base: Any) -> slots.ChatTask:
        if isinstance(base, slots.ChatTask):
            return base
        if self.domain == "shopping":
            from hiergym.envs.shopping.tools import load_product

            return slots.shopping_task(base, load_product(self.sandbox.db, base.target_id))
        return slots.travel_task(base)

    def make_tasks(self, split: str, difficulty: str) -> TaskSet:
        key = (self.domain, str(self.sandbox.db_path), split, difficulty)
        if key not in _CHAT_TASKS:
            base = super().make_tasks(split, difficulty)
            _CHAT_TASKS[key] = TaskSet([self.chat_task(t) for t in base], split, difficulty)
        return _CHAT_TASKS[key]

    def make_verifier(self, aggregate: Any, **params: Any) -> HierarchicalVerifier:
        return verifier.build_verifier(
            self.domain, self.sandbox.db, aggregate, judge=self.chat_judge, **params
        )

    def system_prompt(self) -> str:
        return (
            f"You are a {self.domain} assistant in hiergym. {INSTRUCTIONS} A tool call is one JSON "
            'object {"name": "<tool>", "arguments": {...}} or <tool_call>{...}</tool_call> blocks.'
        )

    def render_prompt(self, task: Any) -> str:
        text = f"User: {task.opening}\n\n{INSTRUCTIONS}"
        if self.domain == "travel":
            from hiergym.envs.travel.tasks import ITINERARY_HELP

            text += "\n\n" + ITINERARY_HELP.replace(
                'call submit with {"itinerary": {...}}',
                'call submit with {"itinerary": {...}, "message": "..."}',
            )
        return text

    def make_oracle(self) -> Any:
        world = None
        if self.domain == "travel":
            from hiergym.envs.travel.world import world_of

            world = world_of(self.sandbox.db)
        return oracle.ChatOracle(super().make_oracle(), self.domain, world)

    def mutants(self) -> list[Any]:
        return attacks.mutants()

    def attacks(self) -> list[Any]:
        return list(attacks.ATTACKS)

    def twins(self) -> list[Any]:
        return list(attacks.TWINS)

    # ---- the conversation ----------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        options = dict(options or {})
        if "task" in options:
            options["task"] = self.chat_task(options["task"])
        obs, info = super().reset(seed=seed, options=options)
        self.state = EpisodeState(
            self.sandbox, self.task.base, {"user": users.make_user(self.user_kind, self.task)}
        )
        info["user"] = self.state.memory["user"].kind
        return obs, info

    @property
    def user(self) -> users.RuleUser:
        """The simulated (or external) user of the current episode."""
        return self.state.memory["user"]

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if looks_like_prose(action):
            action = ToolCall(tools.message_user.name, {"text": action})
        before = len(self.trajectory.turns) if self.trajectory is not None else 0
        out = super().step(action)
        if self.trajectory is not None and len(self.trajectory.turns) > before:
            turn = self.trajectory.turns[-1]
            for call, result in zip(turn.calls, turn.results, strict=False):
                if call.name == tools.message_user.name and result.ok:
                    self.user.record(call.arguments["text"], result.content)
            self.state.memory["replied"] = False
        return out


class ShoppingChatEnv(ChatEnvMixin, ShoppingEnv):
    """Shopping as a conversation: a simulated user holds the requirements; the agent is the
    assistant.

    ## Description
    The user opens with a vague request ("Hi! I'm looking for a wrap dress."). The assistant asks
    for what it needs (``message_user`` or plain text; the user answers exactly what was asked,
    truthfully; on hard tasks it changes one option, or the budget, in the reply after it first
    gave it), searches the catalog with the Shopping tools, may propose a product id in a message
    (the user accepts it or says why not) and submits one variant with its final message.

    ## Action Space
    Text: a JSON tool call, ``<tool_call>`` blocks, an OpenAI ``tool_calls`` message, or plain
    prose (a message to the user). Tools: message_user, search, view_product, select_options,
    add_to_cart, view_cart, submit.

    ## Observation Space
    Text: the user's opening and the instructions after reset; the user's reply to a message; tool
    results; ``error: ...`` for bad actions.

    ## Rewards
    0 on every step but the last; then format -> elicitation -> correctness (Shopping's grounding
    and product levels) -> communication (Shopping's response rubric) -> efficiency, folded by the
    aggregator (``gated`` by default); see :mod:`hiergym.envs.dialogue.verifier`.

    ## Episode End
    Terminated by a valid ``submit``; truncated after ``max_turns`` (default 30) actions.

    ## Arguments
    Shopping's (split, difficulty, max_turns, mode, backend, aggregate, aggregate_params,
    render_mode), ``judge`` (blended into communication), ``user``: ``"rule"`` (default), an LLM
    backend (``hiergym.agents`` OpenAI-compatible or transformers; replies cached in the tool
    cache) or ``"external"`` (the PettingZoo view's user agent).

    ## Version History
    * v0: initial release.
    """

    default_max_turns = 30


class TravelChatEnv(ChatEnvMixin, TravelEnv):
    """Travel as a conversation: the user names the destination only; origin, dates, party size,
    budget and constraints come when asked (the dates change on hard tasks). Tools: message_user
    and Travel's; ``submit`` takes the itinerary and a final ``message`` (the cities, the dates
    and the total cost, truthfully). Levels: format -> elicitation -> correctness (Travel's
    feasibility, grounding, constraints, quality) -> communication -> efficiency. Arguments as
    :class:`ShoppingChatEnv` (with Travel's defaults: max_turns 80).

    ## Version History
    * v0: initial release.
    """

    default_max_turns = 80
