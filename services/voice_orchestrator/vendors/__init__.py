"""Vendor clients, each behind a small Protocol; base URLs come from settings so the same code
talks to the real vendor or to the local simulators."""
