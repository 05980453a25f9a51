from __future__ import annotations

import re

from dataspace import demo


def test_the_demo_runs_identity_catalogue_contracts_data_duties_and_revocation() -> None:
    lines: list[str] = []
    assert demo.run(lines.append, match_size=2000) == 0
    output = "\n".join(lines)
    for service in ("broker (authority)", "ledger", "connector (city bureau)", "connector (bank)",
                    "connector (regulator)"):  # fmt: skip
        assert f"  {service} " in output
    assert output.count("health: ok (database ok") == 5
    assert output.count(": ISSUED") == 3  # the bureau, the bank, the regulator
    assert (
        "the bureau verified the bank: membership True, roles ['FinancialInstitution'], grade general, region 440106"
        in output
    )
    assert "(lint: 0 finding(s))" in output
    assert re.search(
        r"the bank searches the broker for 企业 名录 in economic-development: "
        r"urn:kexin:asset:firm-list of did:web:127\.0\.0\.1%3A\d+:bureau, "
        r"at http://127\.0\.0\.1:\d+/dsp\n",
        output,
    )
    assert "the bank reads the bureau's catalogue: ['urn:kexin:asset:firm-list']" in output
    assert "one call to the bank's data contracts API: agreement urn:uuid:" in output
    for number in (1, 2):
        assert f"download {number}: 328940 bytes, sha256 " in output
    # refused by the policy, or by its monitor if that ended the spent transfer first
    assert re.search(
        r"download 3: refused \((policy_denied|transfer_terminated)\): "
        r"count lteq 2: violated \(actual 3\)\n",
        output,
    )
    assert (
        "the bureau's policy monitor ends the transfer (policy_monitor): "
        "count lteq 2: violated (actual 3)" in output
    )
    assert "the bank deletes the data: duty delete fulfilled, receipt signed" in output
    assert "the bureau holds the bank's signed deletion receipt: True" in output
    assert (
        "the bank's connector believes its credentials: {'MembershipCredential': 'valid', "
        "'FinancialInstitutionCredential': 'revoked'}"
        in output
        or "the bank's connector believes its credentials: {'FinancialInstitutionCredential': "
        "'revoked', 'MembershipCredential': 'valid'}"
        in output
    )
    assert (
        "after the caches refresh the bureau answers 200: membership True, roles []; "
        "the bank's catalogue: []" in output
    )
    assert (
        "Matching: the bureau's 2,000 key enterprises against the bank's 2,000 borrowers" in output
    )
    assert re.search(r"the bank learns 400 of its borrowers are on the list \(20 of its", output)
    assert "the bureau's list held 20 malformed identifiers, left out of its set" in output
    assert re.search(
        r"a second run, beyond the one agreed: refused \(match_refused\): "
        r".*kexin:matchRuns lteq 1: violated \(actual 2\)\n",
        output,
    )
    assert "the consumer's set size (1980)" in output
    assert "Ledger: the regulator asks for Membership + RegulatorCredential: ISSUED" in output
    assert re.search(
        r"the ledger holds the signed, anchored events of both sides: bank \d+, bureau \d+\n",
        output,
    )
    assert re.search(
        r"one download, 328,940 bytes to the bank: event [0-9a-f-]{36}, its inclusion proof and "
        r"on-chain root verified against the chain\n",
        output,
    )
    assert re.search(r"reconciliation of both sides' records: \d+ flows, all match\n", output)
    assert re.search(
        r"verify names 1 failure\(s\), did:web:\S+:bureau event [0-9a-f-]{36} sequence \d+: "
        r"tampered: ",
        output,
    )
    assert re.search(
        r"the chain node stopped and started again from its state file \([\d,]+ bytes\): "
        r"block (\d+) \(was \1\); the download's proof is still verified against it\n",
        output,
    )
    assert output.endswith("Everything built so far ran as expected.")
