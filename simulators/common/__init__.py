"""Pieces shared by the simulators: audio codecs, speech synthesis, HTTP helpers."""
