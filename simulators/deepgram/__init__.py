"""Deepgram simulator: the live streaming WebSocket API (/v1/listen)."""
