"""Run the Voice Orchestrator: `python -m services.voice_orchestrator`."""

from __future__ import annotations

import uvicorn

from services.common import failpoints
from services.common.logging import configure_logging
from services.common.settings import get_settings
from services.voice_orchestrator.app import create_app


def main() -> None:
    settings = get_settings()
    configure_logging("voice-orchestrator", settings.log_level)
    failpoints.arm(settings)
    uvicorn.run(
        create_app(settings),
        host="0.0.0.0",
        port=settings.voice_orchestrator_port,
        log_config=None,
        # Twilio sends its own keep-alive traffic (media every 20 ms); ping only idle sockets.
        ws_ping_interval=20.0,
        # Base64 μ-law compresses poorly; deflating every 20 ms frame cost CPU (py-spy).
        ws_per_message_deflate=False,
    )


if __name__ == "__main__":
    main()
