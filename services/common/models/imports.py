"""Bulk debtor imports: jobs and per-row errors (issue 18 item 2)."""

from __future__ import annotations
