"""One router per resource; every `/v1` router is mounted behind the API key dependency."""
