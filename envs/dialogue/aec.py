"""The PettingZoo view: a conversation as an AEC env with agents ``assistant`` and ``user``.

The agents act in a strict cycle, assistant then user, so PettingZoo's ``aec_to_parallel`` applies
(``hiergym.dialogue.make(id, parallel=True)``):

* the **assistant** acts with text (tool calls, ``message_user``, or prose, exactly as in the
  Gymnasium view). Tool calls run at once; an action that messages the user waits for the user's
  action in the same cycle;
* the **user** acts with a message. When the assistant's action messaged it, that message is the
  reply the assistant observes; otherwise nothing was asked and the user's action is ignored
  (``infos["user"]["ignored"]``). Its observation is its brief (the hidden requirements, see
  :meth:`DialogueAEC.user_brief`) and then the assistant's latest message.

Underneath is the Gymnasium view with an external user (:class:`.user.ExternalUser`), so the
trajectory, the tools and the verdict are the single-agent ones. The episode ends at the end of the
cycle in which the assistant submitted or ran out of turns; both agents then get the verdict's
reward (a cooperative game: the user is paid for a conversation that reaches the right answer).
To play the user with the rule-based simulator, use :meth:`DialogueAEC.rule_reply`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo import AECEnv

from hiergym.envs.core import to_observation
from hiergym.envs.tools import ActionParseError, parse_action

from .env import looks_like_prose
from .tools import message_user
from .user import RuleUser

AGENTS = ("assistant", "user")


class Utterance(str):
    """An observation: a ``str`` that reports its space's dtype (``spaces.Text`` has
    ``np.dtype("<U")``). PettingZoo's api_test compares every observation's ``dtype`` with its
    space's, which a plain ``str`` has none of; everything else sees an ordinary string."""

    __slots__ = ()
    dtype = np.dtype("<U")


def _messages_user(action: Any) -> bool:
    if looks_like_prose(action):
        return True
    try:
        return any(c.name == message_user.name for c in parse_action(action))
    except ActionParseError:
        return False


class DialogueAEC(AECEnv):
    """A conversational hiergym env as a PettingZoo AEC env (see the module docstring)."""

    metadata = {
        "render_modes": ["ansi", "human"],
        "name": "hiergym_dialogue",
        "is_parallelizable": True,
    }

    def __init__(self, env_id: str, render_mode: str | None = None, **kwargs: Any):
        super().__init__()
        self.env_id = env_id
        self.core = gym.make(env_id, user="external", render_mode=render_mode, **kwargs)
        self.render_mode = render_mode
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self._spaces = {
            "observation": self.core.observation_space,
            "action": self.core.action_space,
        }

    def observation_space(self, agent: str) -> Any:
        return self._spaces["observation"]

    def action_space(self, agent: str) -> Any:
        return self._spaces["action"]

    @property
    def base(self) -> Any:
        """The Gymnasium view underneath (its task, trajectory, verdict)."""
        return self.core.unwrapped

    def user_brief(self) -> str:
        task = self.base.task
        needs = "\n".join(f"- {s.name}: {s.answer}" for s in task.of_kind("need"))
        change = ""
        if task.change is not None:
            c = task.change
            change = (
                f"\nWhen first asked about the {c.slot}, say: {c.before} In your next reply, "
                f"correct it: {c.after}"
            )
        return to_observation(
            "You are the user. You opened with: "
            f"{task.opening}\nWhat you want (say each only when asked):\n{needs}{change}"
        )

    def rule_reply(self, text: str | None = None) -> str:
        """What the rule-based user would answer now to ``text`` (default: the message waiting
        for the user; "Okay." when none is)."""
        if text is None:
            if self._held is None:
                return "Okay."
            text = self._held_text()
        now = self.base.user
        sim = RuleUser(self.base.task, dict(now.told), now.changed)
        return sim.answer(text, self.base.sandbox.db)

    def _held_text(self) -> str:
        action = self._held
        if looks_like_prose(action):
            return str(action)
        for c in parse_action(action):
            if c.name == message_user.name:
                return str(c.arguments.get("text", ""))
        return ""

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        obs, info = self.core.reset(seed=seed, options=options)
        self.agents = list(AGENTS)
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {"assistant": info, "user": {"task_id": info.get("task_id")}}
        self._obs = {"assistant": obs, "user": self.user_brief()}
        self._held: Any = None
        self._ended: tuple[float, bool, bool] | None = None
        self.agent_selection = "assistant"

    def observe(self, agent: str) -> Utterance:
        return Utterance(self._obs[agent])

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        self.rewards = {a: 0.0 for a in self.agents}
        if agent == "assistant":
            if _messages_user(action):
                self._held = action
                self._obs["user"] = to_observation(f"Assistant: {self._held_text()}")
            else:
                self._run(action)
                self._obs["user"] = to_observation("(the assistant is using its tools)")
            self.agent_selection = "user"
        else:
            if self._held is not None:
                reply = action if isinstance(action, str) else str(action)
                self.base.user.pending = reply[:4000] or "..."
                held, self._held = self._held, None
                self._run(held)
                self.infos["user"] = {"task_id": self.base.task.task_id, "ignored": False}
            else:
                self.infos["user"] = {"task_id": self.base.task.task_id, "ignored": True}
            self.agent_selection = "assistant"
            if self._ended is not None:
                reward, terminated, truncated = self._ended
                self.rewards = {a: reward for a in self.agents}
                self.terminations = {a: terminated for a in self.agents}
                self.truncations = {a: truncated for a in self.agents}
        self._accumulate_rewards()
        if self.render_mode == "human":
            print(self.render())

    def _run(self, action: Any) -> None:
        obs, reward, terminated, truncated, info = self.core.step(action)
        self._obs["assistant"] = obs
        self.infos["assistant"] = info
        if (terminated or truncated) and self._ended is None:
            self._ended = (float(reward), bool(terminated), bool(truncated))

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        return self.base.render() if self.base.render_mode else None

    def close(self) -> None:
        self.core.close()
