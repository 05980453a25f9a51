from __future__ import annotations

from dataspace import demo


def test_demo_onboards_authenticates_decides_revokes_and_says_what_is_not_built() -> None:
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
    assert "after the caches refresh the bureau answers 403: revoked_credential" in output
    assert "lint: 0 finding(s)" in output
    for download in (1, 2, 3):
        assert f"download {download} by the bank: allowed: permission[0] grants read" in output
    assert (
        "download 4 by the bank: refused: permission[0] (use): count lteq 3: violated (actual 4)"
        in output
    )
    assert "Not built yet" in output
    assert all(part in output for part in demo.NOT_BUILT_YET)
