"""Package: its package-scoped fixtures (servers, apps) end with its last test."""
