"""ElevenLabs simulator: WebSocket text-to-speech (stream-input and multi-stream-input)."""
