"""An ended call's memory comes back at once, without waiting for a full garbage collection.

Full collections are rare on purpose (GC_THRESHOLDS), so anything of a call left in a reference
cycle stays in memory for a long time: before this test, each ended call kept its session and
recording (~2.5 MB) until one ran, and RSS grew by 1.4 GB over a capacity run.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest

from services.voice_orchestrator.session import CallSession
from tests.orchestrator.conftest import Orch


async def test_an_ended_call_is_freed_without_a_garbage_collection(
    orch: Orch, monkeypatch: pytest.MonkeyPatch
) -> None:
    alive: list[weakref.ref[Any]] = []
    init = CallSession.__init__

    def tracking_init(self: CallSession, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        alive.extend([weakref.ref(self), weakref.ref(self.recorder)])

    monkeypatch.setattr(CallSession, "__init__", tracking_init)
    gc.collect()
    gc.disable()  # only reference counting frees anything now
    try:
        calls = []
        # A plain call, and one whose turns get cut off (cancelled turn tasks).
        for persona in ("cooperative", "interrupter"):
            number = await orch.assign(persona)
            call_id, data = await orch.new_call(number, name=f"Jane Freed {persona.title()}")
            await orch.dispatch(data)
            calls.append(call_id)
        for call_id in calls:
            await orch.wait_terminal(call_id, within=120)
        await asyncio.sleep(1)  # the media handlers return after finalizing
        assert len(alive) == 4
        held = [ref() for ref in alive if ref() is not None]
        assert not held, f"still referenced after the call ended: {held}"
    finally:
        gc.enable()
