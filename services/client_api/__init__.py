"""Client API: the REST API client developers use (debtors, call triggers, call history, webhook
endpoints and deliveries), plus the `call-events` consumer and the webhook delivery worker."""
