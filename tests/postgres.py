"""A throw-away PostgreSQL cluster for the tests: initdb in a temporary folder, a loopback port,
stopped and removed afterwards. Uses the server binaries of Debian's ``postgresql`` package
(``make test`` installs it when missing). As root, the server runs as the ``postgres`` user,
since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.loopback import free_port

USER = "kexin"


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL server's bin folder, or None."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    if found:
        return found[-1].parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).resolve().parent if pg_ctl else None


def _run(command: Sequence[str], *, as_postgres: bool) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if as_postgres else []
    subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)


@dataclass
class Cluster:
    """A running throw-away cluster that a test may stop and start again (same port, data)."""

    bindir: Path
    data: Path
    options: str
    log: Path
    url: str
    """The admin URL (``postgresql+psycopg://kexin@127.0.0.1:PORT/postgres``)."""
    up: bool = False

    def start(self) -> None:
        self.up = True
        _run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", self.options,
             "-l", str(self.log), "-w", "-t", "60", "start"],
            as_postgres=os.geteuid() == 0,
        )  # fmt: skip

    def stop(self) -> None:
        self.up = False
        _run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            as_postgres=os.geteuid() == 0,
        )


@contextmanager
def controlled_cluster(bindir: Path) -> Iterator[Cluster]:
    """Start a cluster; yield it, to be stopped and started again; remove it afterwards."""
    as_postgres = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="kexin-pg-"))
    data = folder / "data"
    if as_postgres:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    port = free_port()
    _run(
        [str(bindir / "initdb"), "-D", str(data), "-U", USER, "-A", "trust", "-E", "UTF8",
         "--locale=C", "--no-sync"],
        as_postgres=as_postgres,
    )  # fmt: skip
    options = (
        f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off"
    )
    running = Cluster(
        bindir, data, options, folder / "log", f"postgresql+psycopg://{USER}@127.0.0.1:{port}/postgres"
    )  # fmt: skip
    running.start()
    try:
        yield running
    finally:
        if running.up:
            running.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def cluster(bindir: Path) -> Iterator[str]:
    """Start a cluster; yield the admin URL (``postgresql+psycopg://kexin@127.0.0.1:PORT/postgres``)."""
    with controlled_cluster(bindir) as running:
        yield running.url


def create_database(admin_url: str, name: str) -> str:
    """Create database ``name`` on the cluster; return its SQLAlchemy URL."""
    conninfo = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"'.encode())
    return admin_url.rsplit("/", 1)[0] + f"/{name}"
