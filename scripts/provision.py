"""Apply migrations, create Pub/Sub topics/subscriptions/dead-letter topics and the GCS bucket.

Reads the same environment variables as the services; used by docker-compose's `provision` step.
Idempotent: safe to run on every start.
"""

from __future__ import annotations

from scripts.localstack import migrate
from services.common.blobstore import GcsBlobStore
from services.common.bus import ensure_topology
from services.common.settings import Settings


def main() -> None:
    settings = Settings()
    migrate(settings.database_url)
    print("migrations applied", flush=True)
    ensure_topology(settings)
    print("topics and subscriptions ready", flush=True)
    GcsBlobStore(settings).ensure_bucket()
    print(f"bucket {settings.gcs_bucket} ready", flush=True)


if __name__ == "__main__":
    main()
