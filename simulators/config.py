"""Simulator settings: every field is a CLI flag (``--twilio-port``) and an env var
(``SIM_TWILIO_PORT``); the flag wins over the variable, which wins over the default."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SimConfig:
    host: str = "127.0.0.1"
    twilio_port: int = 8901
    deepgram_port: int = 8902
    openai_port: int = 8903
    elevenlabs_port: int = 8904
    speech: str = "auto"
    ms_per_char: float = 65.0
    persona_time_scale: float = 1.0
    default_persona: str = "cooperative"
    persona_dirs: list[Path] = field(default_factory=list)
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_callback_timeout_s: float = 5.0
    max_calls_kept: int = 10000
    deepgram_latency_ms: float = 50.0
    deepgram_idle_timeout_s: float = 10.0
    deepgram_vad_threshold: float = 250.0
    deepgram_api_key: str = ""
    openai_ttft_ms: float = 700.0
    openai_tokens_per_s: float = 90.0
    openai_api_key: str = ""
    elevenlabs_ttfb_ms: float = 150.0
    elevenlabs_speed: float = 4.0
    elevenlabs_chunk_ms: int = 250
    elevenlabs_api_key: str = ""
    # Jitter: each latency above is the median of a log-normal with this sigma (0 = fixed).
    deepgram_latency_sigma: float = 0.0
    openai_ttft_sigma: float = 0.0
    elevenlabs_ttfb_sigma: float = 0.0
    twilio_media_latency_ms: float = 0.0  # one way, each direction of the media stream
    twilio_amd_time_scale: float = 1.0  # multiplies Twilio's AMD thresholds (tests: faster)
    latency_seed: int = 0  # seeds the jitter draws (one sequence per vendor)
    log_level: str = "INFO"

    def with_overrides(self, **kwargs: Any) -> SimConfig:
        return replace(self, **kwargs)


HELP: dict[str, str] = {
    "host": "interface every simulator listens on",
    "twilio_port": "Twilio REST + control API port (0 = any free port)",
    "deepgram_port": "Deepgram live WebSocket port",
    "openai_port": "OpenAI Chat Completions port",
    "elevenlabs_port": "ElevenLabs WebSocket TTS port",
    "speech": "audio voices: auto (espeak-ng if installed), espeak or tone",
    "ms_per_char": "tone voice: milliseconds of audio per character of text",
    "persona_time_scale": "multiplies every persona delay and ring time",
    "default_persona": "persona for numbers with no assignment",
    "persona_dirs": "extra directories of persona YAML files",
    "twilio_account_sid": "if set, the only accepted Twilio account SID",
    "twilio_auth_token": "if set, the only accepted auth token (else learned)",
    "twilio_callback_timeout_s": "timeout of status callback / TwiML requests",
    "max_calls_kept": "finished calls kept for the control API",
    "deepgram_latency_ms": "extra delay before each Deepgram message is sent",
    "deepgram_idle_timeout_s": "close after this long without audio/KeepAlive",
    "deepgram_vad_threshold": "mean absolute sample above which a 20 ms frame is speech",
    "deepgram_api_key": "if set, the only accepted Deepgram key",
    "openai_ttft_ms": "time to first token (before reasoning tokens)",
    "openai_tokens_per_s": "streaming speed, also used for reasoning tokens",
    "openai_api_key": "if set, the only accepted OpenAI key",
    "elevenlabs_ttfb_ms": "time from a generation trigger to its first audio",
    "elevenlabs_speed": "audio generated per second of wall time, in seconds",
    "elevenlabs_chunk_ms": "audio per ElevenLabs message, in milliseconds",
    "elevenlabs_api_key": "if set, the only accepted ElevenLabs key",
    "deepgram_latency_sigma": "log-normal sigma of the Deepgram message delay (0 = fixed)",
    "openai_ttft_sigma": "log-normal sigma of the time to first token (0 = fixed)",
    "elevenlabs_ttfb_sigma": "log-normal sigma of the ElevenLabs first-byte time (0 = fixed)",
    "twilio_media_latency_ms": "delay of the media stream, each direction, in milliseconds",
    "twilio_amd_time_scale": "multiplies Twilio's answering-machine detection thresholds",
    "latency_seed": "seed of the latency jitter (same seed, same draws)",
    "log_level": "Python logging level",
}


def _convert(kind: str, raw: str) -> Any:
    # Field types are strings here (postponed annotations): "int", "float", "str", "list[Path]".
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "list[Path]":
        return [Path(p) for p in raw.split(os.pathsep) if p]
    return raw


def env_name(name: str) -> str:
    return f"SIM_{name.upper()}"


def load_config(argv: list[str] | None = None, env: dict[str, str] | None = None) -> SimConfig:
    """Defaults, overridden by ``SIM_*`` environment variables, overridden by CLI flags."""
    env = dict(os.environ) if env is None else env
    parser = argparse.ArgumentParser(
        prog="python -m simulators",
        description="Local Twilio, Deepgram, OpenAI and ElevenLabs simulators in one process.",
    )
    values: dict[str, Any] = {}
    for f in fields(SimConfig):
        kind = str(f.type)
        if env_name(f.name) in env:
            values[f.name] = _convert(kind, env[env_name(f.name)])
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{HELP[f.name]} (env {env_name(f.name)})"
        if kind == "list[Path]":
            parser.add_argument(flag, help=help_text, action="append", type=Path, default=None)
        else:
            conv = {"int": int, "float": float}.get(kind, str)
            parser.add_argument(flag, help=help_text, type=conv, default=None)
    args = parser.parse_args(argv)
    for f in fields(SimConfig):
        v = getattr(args, f.name)
        if v is not None:
            values[f.name] = v
    cfg = SimConfig(**values)
    if cfg.speech not in ("auto", "espeak", "tone"):
        parser.error("--speech must be auto, espeak or tone")
    return cfg
