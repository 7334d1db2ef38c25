"""The Twilio simulator's call book and what the shared network keeps of each call."""

from __future__ import annotations

import asyncio

import aiohttp

from simulators import SimConfig
from simulators.common.speech import tone_speech
from simulators.common.utterance import Utterance
from simulators.network import PhoneNetwork
from simulators.twilio.call import SimCall
from simulators.twilio.calls import CallBook


def _call(net: PhoneNetwork, http: aiohttp.ClientSession, to: str) -> SimCall:
    return SimCall(
        net,
        http,
        account_sid="AC1",
        auth_token="token",
        to=to,
        from_="+15550001111",
        persona=net.persona_for(to),
        params=[("To", to), ("Twiml", "<Response/>")],
    )


def _said(net: PhoneNetwork, sid: str) -> None:
    speech = tone_speech("Hello.", "debtor", 15.0)
    net.add_utterance(Utterance(sid, 0, "Hello.", speech, asyncio.get_running_loop().time()))


async def test_the_book_evicts_the_oldest_and_forgets_finished_calls_on_the_network() -> None:
    net = PhoneNetwork(SimConfig(speech="tone", max_calls_kept=2))
    rule = net.faults.add(
        {"deepgram": {"status": 500, "number": "+1 555 000 0001"}}, net.normalize_number
    )[0]
    book = CallBook(net)
    async with aiohttp.ClientSession() as http:
        first, second, third = (_call(net, http, f"+1 555 000 000{i}") for i in (1, 2, 3))
        book.add(first)
        _said(net, first.sid)
        assert net.fault_scope_matches(rule, [first.sid])  # scoped by the call's To number
        assert not net.fault_scope_matches(rule, ["CA-not-a-call"])
        for call in (second, third):
            book.add(call)
            _said(net, call.sid)
        # Past max_calls_kept the oldest call goes, with what the network kept of it.
        assert [c.sid for c in book] == [second.sid, third.sid]
        assert [c.sid for c in book.newest_first()] == [third.sid, second.sid]
        assert book.get(first.sid) is None and first.sid not in net.utterances
        assert not net.fault_scope_matches(rule, [first.sid])

        third.finished = True  # as the call's task leaves it
        book.forget_finished()
        assert [c.sid for c in book] == [second.sid]
        assert third.sid not in net.utterances and third.sid not in net.call_numbers
        assert net.utterance_for(second.sid, asyncio.get_running_loop().time(), set())
