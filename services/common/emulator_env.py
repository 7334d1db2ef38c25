"""The official GCP clients find an emulator through an environment variable they read when a
client is built. It is set only while one is built: a process-wide variable would outlive the
stack it names (a test process talks to several stacks in turn, and child processes inherit the
environment), so a later client or child would dial an emulator that is gone."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def emulator_env(name: str, host: str | None) -> Iterator[None]:
    """`name` = `host` while the block runs (unchanged when `host` is None), then as before."""
    if not host:
        yield
        return
    before = os.environ.get(name)
    os.environ[name] = host
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
