from __future__ import annotations

from dataspace import demo


def test_the_demo_runs_identity_catalogue_negotiation_transfers_and_revocation() -> None:
    lines: list[str] = []
    assert demo.run(lines.append) == 0
    output = "\n".join(lines)
    for service in ("broker (authority)", "ledger", "connector (city bureau)", "connector (bank)"):
        assert f"  {service} " in output
    assert output.count("health: ok (database ok") == 4
    assert output.count(": ISSUED") == 2
    assert (
        "the bureau verified the bank: membership True, roles ['FinancialInstitution'], grade general, region 440106"
        in output
    )
    assert "(lint: 0 finding(s))" in output
    assert "the bank reads the bureau's catalogue: ['urn:kexin:asset:firm-list']" in output
    assert "negotiation for credit assessment: FINALIZED" in output
    for number in (1, 2, 3):
        assert f"transfer {number}: started, completed" in output
    assert (
        "transfer 4: refused (policy_denied): permission[0] (use): count lteq 3: violated (actual 4)"
        in output
    )
    assert "after the caches refresh the bureau answers 403: revoked_credential" in output
    assert "Not built yet" in output
    assert all(part in output for part in demo.NOT_BUILT_YET)
    assert output.endswith("Everything built so far ran as expected.")
