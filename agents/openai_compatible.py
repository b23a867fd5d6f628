"""A backend for any OpenAI-compatible chat endpoint over httpx (vLLM, SGLang, Ollama, llama.cpp, hosted).

Native ``tools`` first; a server that rejects them (HTTP 400 mentioning tools) switches this backend
to the prompt-based format for good. Retries with exponential backoff on 429 and 5xx (honouring
``Retry-After``) and on transport errors; a semaphore caps concurrent requests per backend.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import httpx

from .llm import Completion, LLMError, prompt_based_messages

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAICompatible:
    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        # Gymnasium deep-copies make() kwargs into the env spec; a client with open connections
        # and locks is shared, not copied.
        return self

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_concurrency: int = 8,
        native_tools: bool = True,
        transport: httpx.BaseTransport | None = None,
        extra_body: dict[str, Any] | None = None,
    ):
        self.name = model
        self.model = model
        self.native_tools = native_tools
        self.max_retries = max_retries
        self.backoff = backoff
        self.extra_body = dict(extra_body or {})
        key = api_key or os.environ.get("HIERGYM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            timeout=timeout,
            headers=headers,
            transport=transport,
        )
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self.sleep = time.sleep  # replaceable in tests

    def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        *,
        seed: int | None = None,
        temperature: float = 0.0,
        max_tokens: int = 1024,
        response_format: dict[str, Any] | None = None,
    ) -> Completion:
        """One chat completion; ``response_format`` asks for structured output (a JSON schema)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": max_tokens,
            **self.extra_body,
        }
        if response_format is not None:
            body["response_format"] = response_format
        if seed is not None:
            body["seed"] = seed
        if tools and self.native_tools:
            body["tools"] = tools
            body["tool_choice"] = "auto"
        response = self._post(body)
        if response.status_code == 400 and "tools" in body and "tool" in response.text.lower():
            # The server has no native tool calling: fall back to tools described in the prompt.
            self.native_tools = False
            body.pop("tools")
            body.pop("tool_choice")
            body["messages"] = prompt_based_messages(messages, tools or [])
            response = self._post(body)
        if response.status_code >= 400:
            raise LLMError(
                f"{self.client.base_url}chat/completions answered HTTP {response.status_code}: {response.text[:300]}"
            )
        return self._parse(response.json())

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        last_error = ""
        for attempt in range(self.max_retries + 1):
            try:
                with self._slots:
                    response = self.client.post("chat/completions", json=body)
            except httpx.TransportError as e:
                last_error = f"{type(e).__name__}: {e}"
            else:
                if response.status_code not in RETRY_STATUS:
                    return response
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
                retry_after = response.headers.get("retry-after")
                if (
                    retry_after
                    and retry_after.replace(".", "", 1).isdigit()
                    and attempt < self.max_retries
                ):
                    self.sleep(min(float(retry_after), 60.0))
                    continue
            if attempt < self.max_retries:
                self.sleep(self.backoff * 2**attempt)
        raise LLMError(
            f"{self.client.base_url}chat/completions failed after {self.max_retries + 1} attempts: {last_error}"
        )

    @staticmethod
    def _parse(payload: dict[str, Any]) -> Completion:
        try:
            message = payload["choices"][0]["message"]
        except (KeyError, IndexError, TypeError) as e:
            raise LLMError(f"not an OpenAI chat completion: {str(payload)[:300]}") from e
        usage = payload.get("usage") or {}
        return Completion(
            text=message.get("content") or "",
            tool_calls=message.get("tool_calls") or None,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )

    def close(self) -> None:
        self.client.close()
