"""The calls placed on the Twilio simulator: its REST API and the control API look them up here.

The book owns the calls; the shared network knows each one only by its CallSid and To number
(for the Deepgram simulator's correlation and fault scopes), so it never needs ``SimCall``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from simulators.network import PhoneNetwork
from simulators.twilio.call import SimCall


class CallBook:
    """Calls oldest first; past ``max_calls_kept`` the oldest are forgotten."""

    def __init__(self, network: PhoneNetwork) -> None:
        self.network = network
        self._calls: OrderedDict[str, SimCall] = OrderedDict()

    def add(self, call: SimCall) -> None:
        self._calls[call.sid] = call
        self.network.add_call(call.sid, call.to)
        while len(self._calls) > self.network.config.max_calls_kept:
            old_sid, _ = self._calls.popitem(last=False)
            self.network.forget_call(old_sid)

    def get(self, sid: str) -> SimCall | None:
        return self._calls.get(sid)

    def __iter__(self) -> Iterator[SimCall]:
        return iter(self._calls.values())

    def newest_first(self) -> Iterator[SimCall]:
        return reversed(self._calls.values())

    def forget_finished(self) -> None:
        """Drop finished calls (and what the network kept of them); live calls keep running."""
        for sid in [sid for sid, c in self._calls.items() if c.finished]:
            del self._calls[sid]
            self.network.forget_call(sid)

    async def cancel_live(self) -> None:
        tasks: list[asyncio.Task[Any]] = [
            c.task for c in self._calls.values() if c.task is not None and not c.task.done()
        ]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


CALLS_KEY = web.AppKey("calls", CallBook)
