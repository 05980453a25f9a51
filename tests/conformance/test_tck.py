"""The Eclipse DSP TCK's 65 active scenarios, replayed by the Python kit of this folder against
one Kexin connector running as a real server process in conformance mode. ``KEXIN_TCK_ROUNDS``
rounds (default 5) run one after the other, round-major, against the same process and the same
kit callback server: the connector's scenario driver must play every scenario again on a
database that already holds the earlier rounds.

This is a replay of the kit, not the kit: the Java TCK itself (``shared/conformance/
dsp-tck-scenarios.md`` §8) cannot be built here.
"""

from __future__ import annotations

import os
from typing import Final

import pytest

from tests.conformance.conftest import ConnectorUnderTest
from tests.conformance.pipelines import Kit
from tests.conformance.scenarios import SCENARIOS, in_kit_order

ROUNDS: Final = int(os.environ.get("KEXIN_TCK_ROUNDS", "5"))

RUNS: Final = [
    pytest.param(round_, scenario_id, id=f"{scenario_id}-round{round_}")
    for round_ in range(1, ROUNDS + 1)
    for scenario_id in in_kit_order()
]


@pytest.mark.parametrize(("round_", "scenario_id"), RUNS)
def test_tck_scenario(
    round_: int, scenario_id: str, kit: Kit, connector_under_test: ConnectorUnderTest
) -> None:
    try:
        SCENARIOS[scenario_id](kit, scenario_id)
    except AssertionError as failure:
        pytest.fail(
            f"round {round_}: {failure}\n"
            f"--- the connector's output (last lines) ---\n{connector_under_test.output_tail()}",
            pytrace=False,
        )
    finally:
        kit.endpoint.clear()
        kit.client.sent.clear()
