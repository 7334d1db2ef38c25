"""Run a service's FastAPI app with uvicorn: `python -m services.<name>`."""

from __future__ import annotations

import uvicorn

from services.common import failpoints
from services.common.logging import configure_logging
from services.common.server_timeouts import server_options
from services.common.settings import get_settings


def run(app_path: str, service: str, port: int) -> None:
    settings = get_settings()
    configure_logging(service, settings.log_level)
    failpoints.arm(settings)
    uvicorn.run(
        app_path,
        factory=True,
        host="0.0.0.0",
        port=port,
        log_config=None,  # our JSON logging stays in charge
        access_log=False,
        lifespan="on",
        **server_options(settings),  # slow-loris deadlines
    )
