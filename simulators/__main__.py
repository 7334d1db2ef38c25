"""``python -m simulators``: run the Twilio, Deepgram, OpenAI and ElevenLabs simulators."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from simulators.config import load_config
from simulators.stack import serve_forever


def main(argv: list[str] | None = None) -> int:
    config = load_config(argv)
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
