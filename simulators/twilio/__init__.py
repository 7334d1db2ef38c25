"""Twilio simulator: Programmable Voice REST Calls resource, TwiML, Media Streams, callbacks."""
