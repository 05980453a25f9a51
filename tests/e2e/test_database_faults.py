"""A connector whose disk fills up, for real: its SQLite file lies on a small tmpfs that the
test fills; one whose database becomes read-only, for real: its files on an ext4 image of the
test's own are made immutable (``chattr +i``), which the kernel enforces even on descriptors
already open for writing (remounting read-only is refused while the database is open). While
the fault lasts, requests get a typed 503 ``database_unavailable`` (never a 500), readiness says
why, and the outbox worker keeps retrying; once the fault clears, what was pending is sent
without a restart and new requests succeed. Mounting needs root (CI runs as root)."""

from __future__ import annotations

import gc
import os
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.catalog.offers import offer_id
from tests import postgres
from tests.connector.test_conformance import (
    AUTH,
    KEY,
    OPEN,
    Kit,
    app_with,
    conformance_settings,
    kit_request,
    negotiation_state,
    publish,
    wait_for,
)
from tests.e2e.dataplane_helpers import audit
from tests.e2e.space import start_space
from tests.e2e.test_catalog import onboard_both
from tests.e2e.test_catalog import publish as publish_catalog
from tests.e2e.test_negotiation import firm_list_offer, negotiate, state_of
from tests.e2e.test_negotiation import wait_for as wait_until

DISK_BYTES = 8 << 20
AGREEMENT = "/negotiations/urn:uuid:kit-1/agreement"
CALLERS = 16


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    junk = folder / "junk"
    with junk.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * (64 << 10))
                out.flush()
        except OSError:
            pass
    return junk


def outbox_states(folder: Path) -> list[str]:
    with sqlite3.connect(folder / "c.db") as db:
        rows = db.execute("SELECT status FROM outbox_message ORDER BY id").fetchall()
    return [str(status) for (status,) in rows]


def big_asset(name: str) -> dict[str, object]:
    return {
        "id": f"urn:kexin:asset:{name}",
        "titleEn": name,
        "descriptionEn": "x" * 9_000,  # forty of them: more than the log's spare room
        "dataGrade": "general",
        "dataAddress": {"type": "file", "path": "/srv/big.csv"},
    }


OFFER = {"@id": offer_id("open", OPEN), "target": OPEN, "@type": "Offer",
         "permission": [{"action": "use"}]}  # fmt: skip


def test_a_full_disk_gives_503_and_pending_work_completes_once_space_is_freed(
    small_disk: Path,
) -> None:
    delivering = {"on": False}
    kit = Kit(lambda path, _count: 200 if delivering["on"] or path != AGREEMENT else 503)
    settings = conformance_settings(small_disk)  # its database: small_disk / c.db
    with app_with(settings, kit) as client:
        publish(client)
        created = client.post("/dsp/negotiations/request", json=kit_request(OFFER), headers=AUTH)
        assert created.status_code == 201, created.text
        pid = created.json()["providerPid"]
        wait_for(lambda: AGREEMENT in kit.paths())  # tried once: the kit answered 503

        junk = fill(small_disk)
        delivering["on"] = True  # the kit would take it now, but the outbox cannot record it
        answers = [
            client.post("/management/v1/assets", headers=KEY, json=big_asset(f"during-{n}"))
            for n in range(40)
        ]
        health = client.get("/health")
        time.sleep(1.5)  # outbox rounds fail meanwhile
        worker = client.get("/health").json()["workers"]["outbox"]

        junk.unlink()
        wait_for(lambda: client.get("/health").status_code == 200, timeout_s=20)
        wait_for(lambda: outbox_states(small_disk) == ["sent"], timeout_s=30)
        state = negotiation_state(client, pid)
        after = client.post("/management/v1/assets", headers=KEY, json=big_asset("after"))

    assert {a.status_code for a in answers} <= {201, 503}
    refused = next(a for a in answers if a.status_code == 503)
    assert refused.json() == {
        "type": "ServiceUnavailable",
        "reason": "database_unavailable",
        "message": "the database cannot be used at the moment; nothing was changed, "
        "try again later",
    }
    assert health.status_code == 503
    assert health.json()["database"] in ("full", "unwritable")
    assert worker != "stopped"
    assert after.status_code == 201, after.text
    assert state == "AGREED"
    assert "/negotiations/urn:uuid:kit-1/termination" not in kit.paths()
    assert os.path.exists(small_disk / "c.db")


@pytest.fixture
def ext4_disk(tmp_path: Path) -> Iterator[Path]:
    """A small ext4 file system of the test's own (a loop device), where the kernel enforces
    the immutable attribute even on files already open for writing."""
    image, folder = tmp_path / "disk.ext4", tmp_path / "ext4"
    folder.mkdir()
    with image.open("wb") as out:
        out.truncate(DISK_BYTES * 2)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, check=False)
    mounted = subprocess.run(
        ["mount", "-o", "loop", str(image), str(folder)], capture_output=True, check=False
    )
    if made.returncode != 0 or mounted.returncode != 0:
        why = (made.stderr or mounted.stderr).decode().strip()
        pytest.skip(f"cannot make and mount an ext4 image here (needs root): {why}")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-R", "-i", str(folder)], capture_output=True, check=False)
        subprocess.run(["umount", "-l", str(folder)], check=False)


def immutable(folder: Path, on: bool) -> None:
    """The database and its write-ahead log become read-only for everyone, root included (the
    kernel refuses writes to them, through descriptors already open too), or writable again.
    The shared-memory index stays writable: SQLite maps it, and needs it to read at all."""
    files = [str(folder / name) for name in ("c.db", "c.db-wal")]
    subprocess.run(["chattr", "+i" if on else "-i", *files], check=True, capture_output=True)


def test_a_read_only_database_gives_503_and_pending_work_completes_once_writable(
    ext4_disk: Path,
) -> None:
    delivering = {"on": False}
    kit = Kit(lambda path, _count: 200 if delivering["on"] or path != AGREEMENT else 503)
    settings = conformance_settings(ext4_disk)  # its database: ext4_disk / c.db
    with app_with(settings, kit) as client:
        publish(client)
        created = client.post("/dsp/negotiations/request", json=kit_request(OFFER), headers=AUTH)
        assert created.status_code == 201, created.text
        pid = created.json()["providerPid"]
        wait_for(lambda: AGREEMENT in kit.paths())  # tried once: the kit answered 503

        immutable(ext4_disk, on=True)
        with pytest.raises(PermissionError):
            (ext4_disk / "c.db").open("r+b")  # a real fault: even root cannot write
        delivering["on"] = True  # the kit would take it now, but the outbox cannot record it
        with ThreadPoolExecutor(CALLERS) as callers:  # at once: the pool opens connections
            answers = list(callers.map(lambda n: client.post(
                "/management/v1/assets", headers=KEY, json=big_asset(f"during-{n}")
            ), range(CALLERS)))  # fmt: skip
        health = client.get("/health")
        time.sleep(1.5)  # outbox rounds fail meanwhile
        worker = client.get("/health").json()["workers"]["outbox"]

        immutable(ext4_disk, on=False)
        wait_for(lambda: client.get("/health").status_code == 200, timeout_s=20)
        wait_for(lambda: outbox_states(ext4_disk) == ["sent"], timeout_s=30)
        state = negotiation_state(client, pid)
        with ThreadPoolExecutor(CALLERS) as callers:
            after = list(callers.map(lambda n: client.post(
                "/management/v1/assets", headers=KEY, json=big_asset(f"after-{n}")
            ), range(CALLERS)))  # fmt: skip

    assert [a.status_code for a in answers] == [503] * CALLERS
    assert answers[0].json()["reason"] == "database_unavailable"
    assert (health.status_code, health.json()["database"]) == (503, "unwritable")
    assert worker.startswith("retrying: "), worker
    assert [a.status_code for a in after] == [201] * CALLERS, [
        f"{a.status_code} {a.text[:200]}" for a in after if a.status_code != 201
    ]
    assert state == "AGREED"
    assert "/negotiations/urn:uuid:kit-1/termination" not in kit.paths()


OUTAGE_S = 10.0
NEGOTIATIONS = 3


@pytest.fixture
def stoppable_postgres() -> Iterator[postgres.Cluster]:
    """A PostgreSQL cluster of this test's own, to stop and start again (the session's cluster
    serves the other tests)."""
    bindir = postgres.find_bindir()
    if bindir is None:
        if os.environ.get("KEXIN_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL server binaries not found (make test installs them)")
        pytest.skip("PostgreSQL server binaries not found; run `make test` to install them")
    with postgres.controlled_cluster(bindir) as running:
        yield running


@pytest.mark.postgres
# Seen once in six runs: a psycopg connection garbage-collected while open (its finalizer warns)
# as the connectors shut down after the outage; not a failure of what this test checks.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function BaseConnection.__del__"
    ":pytest.PytestUnraisableExceptionWarning"
)
def test_postgres_stopped_and_started_again_mid_negotiation(
    tmp_path: Path, stoppable_postgres: postgres.Cluster
) -> None:
    """Both connectors on PostgreSQL; the server stops for ten seconds while negotiations are
    under way. Meanwhile calls answer 503 ``database_unavailable`` and readiness 503; once it is
    back, readiness is 200 and every negotiation ends FINALIZED on both sides, without a restart
    of either connector (their workers survived)."""
    databases = tuple(
        postgres.create_database(stoppable_postgres.url, f"{name}_{uuid.uuid4().hex[:8]}")
        for name in ("bureau", "bank")
    )
    with start_space(tmp_path, allow_list=True, databases=(databases[0], databases[1])) as space:
        onboard_both(space)
        publish_catalog(space)
        offer = firm_list_offer(space)
        started = [negotiate(space, offer)["id"] for _ in range(NEGOTIATIONS)]
        stoppable_postgres.stop()
        began = time.monotonic()
        health = [httpx.get(f"{url}/health", timeout=10) for url in (space.bureau.base_url, space.bank_url)]  # fmt: skip
        listed = httpx.get(f"{space.bank_url}/management/v1/negotiations", headers=KEY, timeout=10)
        asked = httpx.post(
            f"{space.bank_url}/management/v1/negotiations", headers=KEY, timeout=10,
            json={"counterPartyId": space.bureau.participant_id,
                  "counterPartyAddress": f"{space.bureau.base_url}/dsp", "offer": offer,
                  "target": "urn:kexin:asset:firm-list", "purpose": "credit-assessment"},
        )  # fmt: skip
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - began)))
        stoppable_postgres.start()
        back = datetime.now(UTC)

        def states() -> dict[str, list[str]]:
            bank = [state_of(space.bank_url, pid)["state"] for pid in started]
            bureau = httpx.get(
                f"{space.bureau.base_url}/management/v1/negotiations", headers=KEY
            ).json()["items"]
            return {"bank": bank, "bureau": [n["state"] for n in bureau]}

        def ready() -> bool:
            urls = (space.bureau.base_url, space.bank_url)
            return all(httpx.get(f"{url}/health").status_code == 200 for url in urls)

        wait_until(ready, timeout_s=30)
        wait_until(
            lambda: states() == {"bank": ["FINALIZED"] * NEGOTIATIONS,
                                 "bureau": ["FINALIZED"] * NEGOTIATIONS},
            timeout_s=60, seen=states,
        )  # fmt: skip

        def reports() -> list[dict[str, Any]]:
            return [httpx.get(f"{url}/health").json() for url in (space.bureau.base_url, space.bank_url)]  # fmt: skip

        # a worker idle in its backoff (at most 10 s) when the outage ended reports running
        # again after its next round
        wait_until(
            lambda: all(set(r["workers"].values()) == {"running"} for r in reports()),
            timeout_s=30, seen=reports,
        )  # fmt: skip
        after = reports()
        moved_after = [
            e for e in audit(space, "bureau") + audit(space, "bank")
            if e["occurred_at"] > back and (e["reason"] or "").startswith("now ")
        ]  # fmt: skip
    # that connection's finalizer runs here, under this test's filter, not in whichever later
    # test the next full collection happens to fall in (seen: test_secrets_at_rest failed so)
    gc.collect()

    assert [h.status_code for h in health] == [503, 503]
    assert {h.json()["database"] for h in health} == {"unreachable"}
    for refused in (listed, asked):
        assert refused.status_code == 503, refused.text
        assert refused.json()["reason"] == "database_unavailable"
    assert moved_after, "nothing was left to do when the server stopped"
    for report in after:
        assert report["status"] == "ok"
        assert set(report["workers"].values()) == {"running"}, report["workers"]
