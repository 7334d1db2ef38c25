"""Deterministic token accounting for the OpenAI simulator.

- A token is ~4 characters: ``tokens(text) = ceil(len(text) / 4)``.
- Prompt tokens: the tools JSON plus, per message, 4 tokens of framing and the tokens of its
  role, content, tool calls and tool_call_id.
- Cached tokens follow OpenAI's prompt caching rule: prompts of 1024+ tokens are cached by
  prefix in 128-token blocks. A block counts as cached when the same prefix (tools + messages,
  serialised) was seen in an earlier request, so a growing conversation reuses its history.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from typing import Any

CHARS_PER_TOKEN = 4
CACHE_MIN_TOKENS = 1024
CACHE_BLOCK_TOKENS = 128
_BLOCK_CHARS = CACHE_BLOCK_TOKENS * CHARS_PER_TOKEN
MESSAGE_OVERHEAD_TOKENS = 4


def count_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def _message_text(msg: dict[str, Any]) -> str:
    parts = [str(msg.get("role", ""))]
    content = msg.get("content")
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    for tc in msg.get("tool_calls") or []:
        fn = tc.get("function") or {}
        parts.append(str(fn.get("name", "")) + str(fn.get("arguments", "")))
    if msg.get("tool_call_id"):
        parts.append(str(msg["tool_call_id"]))
    return "\n".join(parts)


def prompt_text(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    """The prompt as the cache sees it: tools first, then the messages in order."""
    head = json.dumps(tools, sort_keys=True, separators=(",", ":")) if tools else ""
    return head + "".join("\x1e" + _message_text(m) for m in messages)


def prompt_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
    tool_tokens = count_tokens(json.dumps(tools, separators=(",", ":"))) if tools else 0
    return tool_tokens + sum(
        MESSAGE_OVERHEAD_TOKENS + count_tokens(_message_text(m)) for m in messages
    )


class PromptCache:
    """Prefix hashes of 128-token blocks seen so far (bounded LRU)."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._max = max_entries

    def lookup_and_store(self, text: str, n_prompt_tokens: int) -> int:
        """Cached tokens for this prompt; remembers its prefixes for later requests."""
        h = hashlib.sha1()
        cached_blocks = 0
        still_cached = True
        n_blocks = len(text) // _BLOCK_CHARS
        for i in range(n_blocks):
            h.update(text[i * _BLOCK_CHARS : (i + 1) * _BLOCK_CHARS].encode())
            key = h.digest()
            if still_cached and key in self._seen:
                cached_blocks += 1
                self._seen.move_to_end(key)
            else:
                still_cached = False
                self._seen[key] = None
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)
        if n_prompt_tokens < CACHE_MIN_TOKENS:
            return 0
        return min(cached_blocks * CACHE_BLOCK_TOKENS, n_prompt_tokens)
