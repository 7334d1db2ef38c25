"""Operator actions and their audit (issue 18 item 6)."""

from __future__ import annotations
