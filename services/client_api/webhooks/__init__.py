"""Outgoing webhooks: the event registry (events.py), fan-out of those events to the endpoints
subscribed to them, the signed delivery worker, and the retry pump that schedules the next
attempt of a failed delivery."""
