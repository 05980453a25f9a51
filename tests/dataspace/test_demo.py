from __future__ import annotations

from dataspace import demo


def test_demo_starts_every_service_and_says_what_is_not_built() -> None:
    lines: list[str] = []
    assert demo.run(lines.append) == 0
    output = "\n".join(lines)
    for service in ("broker", "ledger", "connector (city bureau)", "connector (bank)"):
        assert f"  {service} " in output
    assert output.count("health: ok (database ok") == 4
    assert "Not built yet" in output
    assert all(part in output for part in demo.NOT_BUILT_YET)
