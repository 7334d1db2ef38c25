"""Vendor adapters' pure parts: Twilio signatures and TwiML, ElevenLabs and Deepgram messages."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

from twilio.request_validator import RequestValidator

from services.common.settings import Settings
from services.voice_orchestrator.dispatch import status_callback_url
from services.voice_orchestrator.ports import (
    SttSpeechStarted,
    SttTranscript,
    SttUtteranceEnd,
    TtsAudio,
    TtsDone,
)
from services.voice_orchestrator.vendors.deepgram import DeepgramStt
from services.voice_orchestrator.vendors.elevenlabs import ElevenLabsTts, parse_server_message
from services.voice_orchestrator.vendors.twilio import (
    MediaOut,
    SignatureVerifier,
    parse_start,
    stream_twiml,
    websocket_url,
)

SETTINGS = Settings(
    twilio_auth_token="secret-token", orchestrator_public_url="https://voice.example.com"
)


def test_stream_twiml_connects_a_bidirectional_stream_with_the_call_id() -> None:
    url = websocket_url(SETTINGS.orchestrator_public_url, "/media-stream")
    assert url == "wss://voice.example.com/media-stream"
    xml = stream_twiml(url, "c-1", 2)
    assert '<Connect><Stream url="wss://voice.example.com/media-stream">' in xml
    assert '<Parameter name="call_id" value="c-1" />' in xml
    assert '<Parameter name="attempt" value="2" />' in xml
    assert websocket_url("http://127.0.0.1:8003/", "/media-stream").startswith("ws://")


def test_http_signature_must_match_url_and_params() -> None:
    v = SignatureVerifier(SETTINGS)
    path = "/twilio/status?call_id=abc"
    params = {"CallSid": "CA1", "CallStatus": "ringing"}
    good = RequestValidator("secret-token").compute_signature(
        "https://voice.example.com" + path, params
    )
    assert v.verify_http(path, params, good)
    assert not v.verify_http(path, {**params, "CallStatus": "busy"}, good)
    assert not v.verify_http("/twilio/status?call_id=xyz", params, good)
    assert not v.verify_http(path, params, "")
    assert status_callback_url(SETTINGS, "abc") == "https://voice.example.com" + path


def test_websocket_signature_is_over_the_wss_url() -> None:
    v = SignatureVerifier(SETTINGS)
    sig = RequestValidator("secret-token").compute_signature(
        "wss://voice.example.com/media-stream", {}
    )
    assert v.verify_websocket("/media-stream", sig)
    assert not v.verify_websocket("/media-stream", "")
    forged = RequestValidator("other").compute_signature("wss://voice.example.com/media-stream", {})
    assert not v.verify_websocket("/media-stream", forged)


def test_media_out_messages() -> None:
    out = MediaOut("MZ1")
    msg = json.loads(out.media(b"\xff" * 160))
    assert msg == {
        "event": "media",
        "streamSid": "MZ1",
        "media": {"payload": base64.b64encode(b"\xff" * 160).decode()},
    }
    assert json.loads(out.mark("t1.2")) == {
        "event": "mark",
        "streamSid": "MZ1",
        "mark": {"name": "t1.2"},
    }
    assert json.loads(out.clear()) == {"event": "clear", "streamSid": "MZ1"}


def test_parse_start() -> None:
    start = parse_start(
        {
            "event": "start",
            "streamSid": "MZ1",
            "start": {"callSid": "CA1", "customParameters": {"call_id": "c-1"}},
        }
    )
    assert (start.stream_sid, start.call_sid, start.custom_parameters) == (
        "MZ1",
        "CA1",
        {"call_id": "c-1"},
    )


def test_elevenlabs_messages() -> None:
    audio = parse_server_message(
        json.dumps(
            {
                "audio": base64.b64encode(b"\x01\x02").decode(),
                "alignment": {
                    "chars": ["H", "i"],
                    "charStartTimesMs": [0, 40],
                    "charDurationsMs": [40, 40],
                },
                "contextId": "t1",
            }
        )
    )
    assert isinstance(audio, TtsAudio) and audio.audio == b"\x01\x02" and audio.context_id == "t1"
    assert audio.alignment is not None and audio.alignment.start_ms == [0, 40]
    assert parse_server_message('{"isFinal": true, "contextId": "t1"}') == TtsDone("t1")
    assert parse_server_message('{"message": "Input timeout", "error": "input_timeout"}') is None
    url = ElevenLabsTts(SETTINGS).url()
    assert url.startswith("wss://api.elevenlabs.io/v1/text-to-speech/")
    assert "/multi-stream-input?" in url and "output_format=ulaw_8000" in url


def test_deepgram_messages() -> None:
    results = SimpleNamespace(
        type="Results",
        is_final=True,
        speech_final=False,
        from_finalize=True,
        channel=SimpleNamespace(alternatives=[SimpleNamespace(transcript="Next Friday.")]),
    )
    assert DeepgramStt._parse(results) == SttTranscript("Next Friday.", True, False, True)
    assert DeepgramStt._parse(SimpleNamespace(type="SpeechStarted")) == SttSpeechStarted()
    assert DeepgramStt._parse(SimpleNamespace(type="UtteranceEnd")) == SttUtteranceEnd()
    assert DeepgramStt._parse(SimpleNamespace(type="Metadata")) is None
    params = DeepgramStt(SETTINGS, "CA1")._params()
    assert params["tag"] == "CA1" and params["encoding"] == "mulaw"
    assert params["sample_rate"] == "8000" and params["interim_results"] == "true"
    assert params["vad_events"] == "true" and params["endpointing"] == "300"
