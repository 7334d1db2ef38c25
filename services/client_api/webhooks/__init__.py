"""Outgoing webhooks: fan-out of `call.completed` to endpoints, the signed delivery worker, and
the retry pump that schedules the next attempt of a failed delivery."""
