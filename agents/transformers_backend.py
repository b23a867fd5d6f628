"""A local causal LM through transformers/torch, prompted with its own chat template.

Tools go through the template's ``tools=`` argument (Hermes/Qwen templates render them and expect
``<tool_call>`` blocks back, which the env parses). Several chats are generated in one left-padded
batch by ``complete_batch``. Needs the ``llm`` extra: ``pip install 'hiergym[llm]'``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from .llm import Completion, LLMError


def _hf_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages as HF chat templates expect them: tool-call arguments as dicts, not strings."""
    out = []
    for m in messages:
        m = copy.deepcopy(m)
        for call in m.get("tool_calls") or []:
            fn = call.get("function", {})
            if isinstance(fn.get("arguments"), str):
                try:
                    fn["arguments"] = json.loads(fn["arguments"])
                except json.JSONDecodeError:
                    fn["arguments"] = {}
        if m.get("content") is None:
            m["content"] = ""
        out.append(m)
    return out


class Transformers:
    def __init__(
        self,
        model_name_or_path: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        trust_remote_code: bool = False,
    ):
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:  # pragma: no cover - depends on the install
            raise LLMError(
                "the Transformers backend needs torch and transformers: pip install 'hiergym[llm]'"
            ) from e
        self.torch = torch
        self.name = model_name_or_path
        self.native_tools = True
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        self.tokenizer = AutoTokenizer.from_pretrained(
            model_name_or_path, trust_remote_code=trust_remote_code
        )
        self.tokenizer.padding_side = "left"  # generation continues from the right edge
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            model_name_or_path, dtype=torch_dtype, trust_remote_code=trust_remote_code
        ).to(self.device)
        self.model.eval()

    def prompt(self, messages: Sequence[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        return self.tokenizer.apply_chat_template(
            _hf_messages(messages), tools=tools, add_generation_prompt=True, tokenize=False
        )

    def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        *,
        seed: int | None = None,
        temperature: float = 0.0,
        max_tokens: int = 512,
    ) -> Completion:
        return self.complete_batch(
            [(messages, tools)], seed=seed, temperature=temperature, max_tokens=max_tokens
        )[0]

    def complete_batch(
        self,
        requests: Sequence[tuple[list[dict[str, Any]], list[dict[str, Any]] | None]],
        *,
        seed: int | None = None,
        temperature: float = 0.0,
        max_tokens: int = 512,
    ) -> list[Completion]:
        torch = self.torch
        prompts = [self.prompt(m, t) for m, t in requests]
        enc = self.tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.device)
        generator_seed = 0 if seed is None else int(seed)
        torch.manual_seed(generator_seed)
        sampling = (
            {"do_sample": True, "temperature": temperature}
            if temperature > 0
            else {"do_sample": False}
        )
        with torch.no_grad():
            out = self.model.generate(
                **enc,
                max_new_tokens=max_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                **sampling,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        completions = []
        for i, row in enumerate(new):
            ids = row.tolist()
            if self.tokenizer.eos_token_id in ids:
                ids = ids[: ids.index(self.tokenizer.eos_token_id)]
            prompt = enc["input_ids"][i][enc["attention_mask"][i].bool()].tolist()
            text, calls = self._parse(ids, prompt)
            completions.append(
                Completion(
                    text=text,
                    tool_calls=calls,
                    prompt_tokens=len(prompt),
                    completion_tokens=len(ids),
                )
            )
        return completions

    def _parse(self, ids: list[int], prompt: list[int]) -> tuple[str, list[dict[str, Any]] | None]:
        """The completion's text and tool calls, as an OpenAI-compatible server returns them.

        A tokenizer with a response template (``tokenizer.parse_response``, as TRL's GRPO parses
        the same model's calls) splits the calls from the text, so the chat the env keeps renders
        each call once, as the template rendered it in training. Without one, or when a call does
        not parse (the env then answers with its error), the text is returned whole."""
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        tok = self.tokenizer
        if getattr(tok, "response_template", None) is None:
            return text, None
        try:
            parsed = tok.parse_response(ids, prefix=prompt)
        except (ValueError, TypeError):  # a malformed call: the env reads the text
            return text, None
        calls = (parsed or {}).get("tool_calls") or []
        if not calls or not all(isinstance(c.get("function"), dict) for c in calls):
            return text, None
        return (parsed.get("content") or "").removesuffix(tok.eos_token or ""), [
            {
                "id": f"call_{j}",
                "type": "function",
                "function": {
                    "name": str(c["function"].get("name", "")),
                    "arguments": json.dumps(c["function"].get("arguments", {})),
                },
            }
            for j, c in enumerate(calls)
        ]
