"""Campaigns and their items (issue 18 item 1)."""

from __future__ import annotations
