"""Per-step call events (issue 18 item 7)."""

from __future__ import annotations
