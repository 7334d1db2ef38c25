"""Voice Orchestrator: places calls and runs the live voice loop (Twilio, STT, LLM, TTS)."""
