"""Matching through the data plane (PSI-PULL) between two connectors on loopback: the bureau
offers its list of key enterprises as a matching set, the bank matches its borrowers."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from connector.contracts.client import ContractsError
from connector.dataplane.matchruns import unpack
from dataspace.cli import app
from matching.identifiers import Kind, normalise_uscc, read_column
from matching.machine import Mode, RequestChunk, RunStart
from matching.messages import encode
from matching.parallel import ClientSession, Workers
from matching.synthetic import Dataset, generate, write_csv
from tests.dsp_schemas import errors
from tests.e2e.dataplane_helpers import PURPOSE, audit, bank_client, offer_data, terms
from tests.e2e.space import Space, start_space
from tests.e2e.test_catalog import bank_asks
from tests.e2e.test_negotiation import wait_for
from tests.e2e.test_transfer import bank_transfer, bureau_transfers, move, transfer
from tests.participants import ADMIN_KEY
from tests.policy.policies import atom

runner = CliRunner()

FIRMS = 3000
BORROWERS = 1000


def lists(folder: Path) -> tuple[Path, Path]:
    """The bureau's firm list and the bank's borrowers: 20 % of the borrowers are on it, 1 %
    of each list malformed."""
    firms, borrowers = folder / "firms.csv", folder / "borrowers.csv"
    write_csv(firms, Dataset.ENTERPRISES, generate(Dataset.ENTERPRISES, FIRMS, 1, malformed=0.01))
    listed = read_column(firms, "uscc", Kind.USCC).items
    write_csv(
        borrowers, Dataset.ENTERPRISES,
        generate(Dataset.ENTERPRISES, BORROWERS, 2, overlap_with=listed, overlap=0.2,
                 malformed=0.01),
    )  # fmt: skip
    return firms, borrowers


def borrower_values(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as stream:
        return [row["uscc"] for row in csv.DictReader(stream)]


def match(space: Space, asset: str, items: list[str], mode: str = "intersection") -> dict[str, Any]:
    with bank_client(space) as client:
        return client.match(
            space.bureau.participant_id, f"{space.bureau.base_url}/dsp", asset, PURPOSE,
            kind="uscc", items=items, mode=mode,
        )  # fmt: skip


MATCH_TERMS = (
    atom("purpose", "isA", PURPOSE),
    atom("kexin:matchRuns", "lteq", "2"),
    atom("kexin:matchSetSize", "gteq", "100"),
    atom("kexin:matchSetSize", "lteq", "5000"),
)


def test_the_bank_learns_exactly_the_intersection_and_the_third_run_is_refused(
    space: Space, tmp_path: Path
) -> None:
    firms, borrowers = lists(tmp_path)
    asset = offer_data(
        space, {"type": "file", "path": str(firms), "matching": {"column": "uscc", "kind": "uscc"}},
        terms(*MATCH_TERMS, atom("kexin:matchOutput", "eq", "intersection")),
    )  # fmt: skip
    values = borrower_values(borrowers)
    expected = set(read_column(firms, "uscc", Kind.USCC).items) & set(
        read_column(borrowers, "uscc", Kind.USCC).items
    )
    first = match(space, asset, values)
    assert first["cardinality"] == len(expected) == 200
    assert {m["item"] for m in first["matches"]} == expected
    assert all(values[m["row"] - 1] for m in first["matches"])
    assert first["invalidCount"] == 10
    assert first["serverItems"] == FIRMS - 30
    assert first["setupCached"] is False

    # the second run from the command line: the matching rows of the file, as they were
    matched = tmp_path / "matched.csv"
    arguments = [
        "match", "--provider", space.bureau.participant_id,
        "--provider-address", f"{space.bureau.base_url}/dsp", "--dataset", asset,
        "--purpose", PURPOSE, "--input", str(borrowers), "--column", "uscc",
        "--output", str(matched), "--connector", space.bank.base_url, "--api-key", ADMIN_KEY,
    ]  # fmt: skip
    second = runner.invoke(app, arguments)
    assert second.exit_code == 0, second.output
    assert "200 of 990 valid identifiers match (10 invalid" in second.stdout
    # rich's progress while it ran (transient), then the time it took, on standard error
    [took] = [line for line in second.stderr.splitlines() if "identifiers (" in line]
    assert re.fullmatch(r"  matching 1000 identifiers \(intersection\): \d+\.\d s", took), took
    with matched.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert {normalise_uscc(r["uscc"]) for r in rows} == expected
    assert {r["uscc"] for r in rows} <= set(values)  # written as in the input, not normalised

    with pytest.raises(ContractsError) as refused:
        match(space, asset, values)
    assert (refused.value.status, refused.value.code) == (403, "match_refused")
    assert any("kexin:matchRuns lteq 2: violated (actual 3)" in r for r in refused.value.reasons)
    again = runner.invoke(app, arguments)
    assert again.exit_code == 3
    assert "kexin:matchRuns lteq 2: violated (actual 4)" not in again.output  # refused: not counted
    assert "kexin:matchRuns lteq 2: violated (actual 3)" in again.output

    runs = [e for e in audit(space) if e["action"] == "matching run"]
    assert len(runs) == 2
    assert all("the provider the consumer's set size (990)" in e["reason"] for e in runs)
    assert not any(str(len(expected)) in e["reason"].split("provider set")[0] for e in runs)
    bank_runs = [e for e in audit(space, "bank") if e["action"] == "matching run"]
    assert sum("intersection 200" in e["reason"] for e in bank_runs) == 2
    # what each side puts on the ledger (psi.run): the bank its sizes and the intersection's,
    # the bureau its own and the bank's, never the intersection's
    completed = [e for e in bank_runs if e["psi_mode"] is not None]
    assert [(e["psi_mode"], e["psi_own_items"], e["psi_intersection"]) for e in completed] == [
        ("intersection", 990, 200)] * 2  # fmt: skip
    assert [(e["psi_own_items"], e["psi_peer_items"], e["psi_intersection"]) for e in runs] == [
        (completed[0]["psi_peer_items"], 990, None)] * 2  # fmt: skip
    # the bytes of the answers, as the bureau sent them and as the bank got them
    assert sorted(e["bytes_sent"] for e in completed) == sorted(e["bytes_sent"] for e in runs)
    assert all(e["bytes_sent"] > 0 for e in completed)


def started_transfer(space: Space, agreement_id: str, format: str) -> tuple[str, str, str]:
    """The bank starts a transfer of ``format`` under the agreement: id, endpoint, token."""
    view = transfer(space, agreement_id, format=format)
    wait_for(lambda: bank_transfer(space, view["id"])["state"] == "STARTED")
    address = bank_transfer(space, view["id"])["dataAddress"]
    properties = {p["name"]: p["value"] for p in address["endpointProperties"]}
    return view["id"], address["endpoint"], properties["authorization"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_bad_runs_are_refused_typed_audited_and_end_the_run(space: Space, tmp_path: Path) -> None:
    firms, borrowers = lists(tmp_path)
    asset = offer_data(
        space, {"type": "file", "path": str(firms), "matching": {"column": "uscc", "kind": "uscc"}},
        terms(*MATCH_TERMS[:1], *MATCH_TERMS[2:]),
    )  # fmt: skip
    agreement = match(space, asset, borrower_values(borrowers))["agreementId"]
    _, endpoint, token = started_transfer(space, agreement, "PSI-PULL")
    assert endpoint == f"{space.bureau.base_url}/dataplane/v1/psi"

    # the matching set is never downloaded, even under an agreement that allows use
    _, data_endpoint, data_token = started_transfer(space, agreement, "HttpData-PULL")
    download = httpx.get(data_endpoint, headers=bearer(data_token))
    assert (download.status_code, download.json()["reason"]) == (403, "matching_set")
    # nor is a PSI-PULL token good for the data endpoint
    plain = httpx.get(f"{space.bureau.base_url}/dataplane/v1/data", headers=bearer(token))
    assert (plain.status_code, plain.json()["reason"]) == (403, "wrong_transfer_type")

    # a set under the floor or over the ceiling: the policy refuses, with its reasons
    for size, violated in ((99, "kexin:matchSetSize gteq 100"), (5001, "lteq 5000")):
        refused = httpx.post(f"{endpoint}/runs", headers=bearer(token),
                             json={"clientItems": size, "mode": "intersection"})  # fmt: skip
        assert (refused.status_code, refused.json()["reason"]) == (403, "policy_denied")
        assert any(violated in r and "violated" in r for r in refused.json()["reasons"])

    for body in ({"clientItems": 0, "mode": "intersection"}, {"clientItems": 5, "mode": "all"},
                 {"clientItems": 500}, [1]):  # fmt: skip
        bad = httpx.post(f"{endpoint}/runs", headers=bearer(token), json=body)
        assert (bad.status_code, bad.json()["reason"]) == (400, "malformed_request")
    no_token = httpx.post(f"{endpoint}/runs", json={"clientItems": 500, "mode": "intersection"})
    assert (no_token.status_code, no_token.json()["reason"]) == (401, "missing_token")

    # a run admitted for 500 items: a tampered frame, a start for another size, a message to a
    # run that has ended or that this transfer never opened are refused, never a 500
    def run() -> str:
        opened = httpx.post(f"{endpoint}/runs", headers=bearer(token),
                            json={"clientItems": 500, "mode": "intersection"})  # fmt: skip
        assert opened.status_code == 201, opened.text
        assert opened.json()["serverItems"] == FIRMS - 30
        run_id: str = opened.json()["runId"]
        return run_id

    def send(run_id: str, frame: bytes) -> httpx.Response:
        return httpx.post(f"{endpoint}/runs/{run_id}/messages", headers=bearer(token),
                          content=frame)  # fmt: skip

    first = run()
    garbage = send(first, b"KXPSI1 not a frame")
    assert (garbage.status_code, garbage.json()["reason"]) == (400, "malformed_message")
    gone = send(first, b"anything")
    assert (gone.status_code, gone.json()["reason"]) == (404, "unknown_run")

    second = run()
    # the run's id under another transfer's token (of the same agreement, even): not its run
    _, _, other_token = started_transfer(space, agreement, "PSI-PULL")
    for method, path in (("GET", "setup"), ("POST", "messages"), ("GET", "responses")):
        foreign = httpx.request(method, f"{endpoint}/runs/{second}/{path}",
                                headers=bearer(other_token), content=b"x")  # fmt: skip
        assert (foreign.status_code, foreign.json()["reason"]) == (404, "unknown_run")
    setup = httpx.get(f"{endpoint}/runs/{second}/setup", headers=bearer(token))
    assert setup.status_code == 200
    assert setup.headers["content-type"] == "application/vnd.kexin.psi-frames"
    offer = httpx.post(f"{endpoint}/runs", headers=bearer(token),
                       json={"clientItems": 500, "mode": "intersection"}).json()  # fmt: skip
    lying = RunStart(offer["runId"], offer["dataVersion"], offer["setupDigest"],
                     Mode.INTERSECTION, 400, 2)  # fmt: skip
    refused = send(offer["runId"], encode(lying))
    assert (refused.status_code, refused.json()["reason"]) == (400, "size_mismatch")
    stale = RunStart(second, "sha256:" + "0" * 64, offer["setupDigest"], Mode.INTERSECTION, 500, 2)
    refused = send(second, encode(stale))
    assert (refused.status_code, refused.json()["reason"]) == (400, "stale_setup")
    # an oversized frame (under the body limit) and a request chunk before the start
    big = run()
    limit = opened_limit = httpx.post(
        f"{endpoint}/runs", headers=bearer(token), json={"clientItems": 500, "mode": "intersection"}
    ).json()
    oversized = send(big, b"x" * (limit["maxMessageBytes"] + 1))
    assert (oversized.status_code, oversized.json()["reason"]) == (400, "oversized_message")
    early = RequestChunk(opened_limit["runId"], 0, 1, b"")
    refused = send(opened_limit["runId"], encode(early))
    assert (refused.status_code, refused.json()["reason"]) == (400, "out_of_order")

    unknown = send("0" * 32, b"x")
    assert (unknown.status_code, unknown.json()["reason"]) == (404, "unknown_run")

    # a whole run by hand, in small chunks: the answers come with the messages and, once
    # every request is in, from GET .../responses, at most 16 frames an answer
    listed = read_column(firms, "uscc", Kind.USCC).items
    others = read_column(borrowers, "uscc", Kind.USCC).items
    items = sorted(set(listed) | set(others))
    assert len(items) <= 5000
    opened = httpx.post(f"{endpoint}/runs", headers=bearer(token),
                        json={"clientItems": len(items), "mode": "intersection"}).json()  # fmt: skip
    with Workers(1) as pool:
        client = ClientSession(items, Mode.INTERSECTION, pool, max_chunk_items=256,
                               run_id=opened["runId"])  # fmt: skip
        got = httpx.get(f"{endpoint}/runs/{opened['runId']}/setup", headers=bearer(token))
        for piece in unpack(got.content, opened["maxMessageBytes"]):
            client.setup_frame(piece)
        answers = 0
        for frame in [client.start_frame(), *client.request_frames()]:
            answer = send(opened["runId"], frame)
            assert answer.status_code == 200, answer.text
            for response in unpack(answer.content, opened["maxMessageBytes"]):
                client.receive(response)
                answers += 1
        while client.run.state.value != "DONE":
            more = httpx.get(f"{endpoint}/runs/{opened['runId']}/responses", headers=bearer(token))
            assert more.status_code == 200, more.text
            frames = unpack(more.content, opened["maxMessageBytes"])
            assert 1 <= len(frames) <= 16
            for response in frames:
                client.receive(response)
                answers += 1
        result = client.result()
    assert answers == -(-len(items) // 256)
    assert {items[p] for p in result.positions or ()} == set(listed)
    ended = httpx.get(f"{endpoint}/runs/{opened['runId']}/responses", headers=bearer(token))
    assert (ended.status_code, ended.json()["reason"]) == (404, "unknown_run")

    # a token of a download transfer opens no run
    other = httpx.post(f"{endpoint}/runs", headers=bearer(data_token),
                       json={"clientItems": 500, "mode": "intersection"})  # fmt: skip
    assert (other.status_code, other.json()["reason"]) == (403, "wrong_transfer_type")

    runs = [e for e in audit(space) if e["action"] == "matching run"]
    refused_runs = [e for e in runs if e["outcome"].value == "refused"]
    assert len(refused_runs) == 5
    assert all("failed" in e["reason"] for e in refused_runs)
    refusals = [e for e in audit(space) if e["action"] == "data access"]
    assert any("policy_denied" in (e["reason"] or "") for e in refusals)

    # the provider terminates a transfer in the middle of a run: the run ends with it
    stopping_id, _, stopping_token = started_transfer(space, agreement, "PSI-PULL")
    opened = httpx.post(f"{endpoint}/runs", headers=bearer(stopping_token),
                        json={"clientItems": 500, "mode": "intersection"}).json()  # fmt: skip
    provider_pid = next(t["id"] for t in bureau_transfers(space) if t["consumerPid"] == stopping_id)
    assert move(space.bureau.base_url, provider_pid, "terminate", code="stop").status_code == 200
    mid_run = httpx.post(f"{endpoint}/runs/{opened['runId']}/messages",
                         headers=bearer(stopping_token), content=b"x")  # fmt: skip
    assert (mid_run.status_code, mid_run.json()["reason"]) == (403, "transfer_terminated")
    after = httpx.get(f"{endpoint}/runs/{opened['runId']}/setup", headers=bearer(stopping_token))
    assert (after.status_code, after.json()["reason"]) == (404, "unknown_run")
    ended_runs = [e for e in audit(space) if e["action"] == "matching run"]
    assert any(opened["runId"] in e["reason"] and "transfer_terminated" in e["reason"]
               for e in ended_runs)  # fmt: skip

    # the bank's membership is revoked: its running PSI-PULL transfer opens no run any more
    admin = {"X-Api-Key": ADMIN_KEY}
    issued = httpx.get(f"{space.authority_url}/admin/credentials", headers=admin,
                       params={"holder": space.bank.participant_id}).json()  # fmt: skip
    membership = next(c for c in issued if c["type"] == "MembershipCredential")
    revoked = httpx.post(
        f"{space.authority_url}/admin/credentials/{membership['id']}/revoke", headers=admin
    )
    assert revoked.status_code == 200, revoked.text

    def refused_now() -> bool:
        answer = httpx.post(f"{endpoint}/runs", headers=bearer(token),
                            json={"clientItems": 500, "mode": "intersection"})  # fmt: skip
        return answer.status_code == 403 and answer.json()["reason"] in (
            "credential_revoked",
            "transfer_terminated",
        )

    wait_for(refused_now)


def test_under_a_cardinality_policy_the_bank_learns_only_the_size(
    space: Space, tmp_path: Path
) -> None:
    firms, borrowers = lists(tmp_path)
    asset = offer_data(
        space, {"type": "file", "path": str(firms), "matching": {"column": "uscc", "kind": "uscc"}},
        terms(*MATCH_TERMS, atom("kexin:matchOutput", "eq", "cardinality")),
    )  # fmt: skip
    # offered in the catalogue as a PSI-PULL distribution, as the DSP schema allows
    dataset = bank_asks(space, f"/dsp/catalog/datasets/{asset}", method="GET", body=None)
    assert errors("catalog/dataset-schema.json", dataset.json()) == []
    assert [d["format"] for d in dataset.json()["distribution"]] == ["PSI-PULL"]
    assert "path" not in dataset.text

    values = borrower_values(borrowers)
    with pytest.raises(ContractsError) as refused:
        match(space, asset, values)
    assert (refused.value.status, refused.value.code) == (403, "match_refused")
    assert any("kexin:matchOutput eq cardinality: violated" in r for r in refused.value.reasons)

    counted = match(space, asset, values, mode="cardinality")
    assert (counted["cardinality"], counted["matches"]) == (200, None)

    # the bureau's list changes: the next run uses the new version's setup, not the cached one
    listed = read_column(firms, "uscc", Kind.USCC).items
    write_csv(firms, Dataset.ENTERPRISES, ((code, "firm", code[2:8]) for code in listed[:1000]))
    again = match(space, asset, values, mode="cardinality")
    assert again["dataVersion"] != counted["dataVersion"]
    assert again["setupCached"] is False
    assert again["serverItems"] == 1000
    in_both = set(listed[:1000]) & set(read_column(borrowers, "uscc", Kind.USCC).items)
    assert again["cardinality"] == len(in_both)


@pytest.fixture
def paged_space(tmp_path: Path) -> Iterator[Space]:
    """The bureau answers one PSI frame a call: the rest is asked for again."""
    with start_space(
        tmp_path, allow_list=True, bureau_extra={"matching_frames_per_answer": 1}
    ) as started:
        yield started


def test_answers_in_pages_are_asked_for_until_all_are_in(
    paged_space: Space, tmp_path: Path
) -> None:
    firms, borrowers = lists(tmp_path)
    asset = offer_data(
        paged_space,
        {"type": "file", "path": str(firms), "matching": {"column": "uscc", "kind": "uscc"}},
        terms(*MATCH_TERMS),
    )  # fmt: skip
    result = match(paged_space, asset, borrower_values(borrowers))
    assert result["cardinality"] == 200
    assert len(result["matches"]) == 200


def test_runs_reuse_the_started_transfer_until_it_ends(space: Space, tmp_path: Path) -> None:
    firms, borrowers = lists(tmp_path)
    asset = offer_data(
        space, {"type": "file", "path": str(firms), "matching": {"column": "uscc", "kind": "uscc"}},
        terms(*MATCH_TERMS[:1]),
    )  # fmt: skip
    values = borrower_values(borrowers)
    first = match(space, asset, values)
    second = match(space, asset, values)
    assert second["transferId"] == first["transferId"]  # no transfer request for a run
    assert second["cardinality"] == 200

    # the bureau terminates the transfer: the next run starts a new one, and is counted
    provider_pid = next(
        t["id"] for t in bureau_transfers(space) if t["consumerPid"] == first["transferId"]
    )
    assert move(space.bureau.base_url, provider_pid, "terminate", code="stop").status_code == 200
    wait_for(lambda: bank_transfer(space, first["transferId"])["state"] == "TERMINATED")
    third = match(space, asset, values)
    assert third["transferId"] != first["transferId"]
    assert (third["agreementId"], third["cardinality"]) == (first["agreementId"], 200)
    runs = [e for e in audit(space) if e["action"] == "matching run"]
    assert sum(e["outcome"].value == "accepted" for e in runs) == 3
