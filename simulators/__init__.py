"""Protocol-faithful local simulators of Twilio, Deepgram, OpenAI and ElevenLabs.

Run them with ``python -m simulators`` (see README.md). Tests may import this package;
services never do: they reach the simulators only through configured base URLs.
"""

from simulators.config import SimConfig, load_config
from simulators.stack import SimulatorStack, SimulatorUrls

__all__ = ["SimConfig", "SimulatorStack", "SimulatorUrls", "load_config"]
