"""Audio plumbing for 8 kHz μ-law telephony: codec tables, VAD, framing, recording."""
