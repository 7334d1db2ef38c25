"""Run the Voice Orchestrator: `python -m services.voice_orchestrator`."""

from __future__ import annotations

import uvicorn

from services.common import failpoints
from services.common.logging import configure_logging
from services.common.server_timeouts import server_options
from services.common.settings import get_settings
from services.voice_orchestrator.app import WS_SERVER_OPTIONS, create_app


def main() -> None:
    settings = get_settings()
    configure_logging("voice-orchestrator", settings.log_level)
    failpoints.arm(settings)
    uvicorn.run(
        create_app(settings),
        host="0.0.0.0",
        port=settings.voice_orchestrator_port,
        log_config=None,
        **WS_SERVER_OPTIONS,
        **server_options(settings),  # slow-loris deadlines; the media WebSocket is not timed
    )


if __name__ == "__main__":
    main()
