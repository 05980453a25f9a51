"""How a refusal becomes one line and an exit code (dataspace.output.refusals)."""

from __future__ import annotations

import pytest
import typer

from dataspace.output import EXIT_CONFIG, EXIT_POLICY, EXIT_REFUSED, refusals
from service.client import ApiError
from service.refusals import ErrorBody


def refused(status: int, reason: str, message: str, **extra: object) -> int:
    """The exit code ``refusals`` gives this refusal."""
    body = ErrorBody.model_validate({"type": "T", "reason": reason, "message": message, **extra})
    with pytest.raises(typer.Exit) as ended, refusals("the service", "SERVICE_KEY"):
        raise ApiError(status, body)
    code: int = ended.value.exit_code
    return code


@pytest.mark.parametrize(
    ("status", "reason", "code"),
    [
        pytest.param(0, "unreachable", EXIT_REFUSED, id="unreachable"),
        pytest.param(401, "not_authorized", EXIT_CONFIG, id="wrong-key"),
        pytest.param(403, "negotiation_refused", EXIT_POLICY, id="forbidden"),
        pytest.param(400, "policy_rejected", EXIT_POLICY, id="lint-errors"),
        pytest.param(404, "not_found", EXIT_REFUSED, id="not-found"),
        pytest.param(409, "in_use", EXIT_REFUSED, id="conflict"),
        pytest.param(502, "peer_refused", EXIT_REFUSED, id="peer"),
    ],
)
def test_each_refusal_has_its_exit_code(status: int, reason: str, code: int) -> None:
    assert refused(status, reason, "no") == code


def test_a_refusal_is_one_line_and_its_reasons_one_line_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    refused(403, "policy_denied", "refused\nby the policy", reasons=["count lteq 2:\nviolated"])
    assert capsys.readouterr().err == (
        "refused: policy_denied: refused; by the policy\n  - count lteq 2:; violated\n"
    )


def test_a_refused_key_names_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    refused(401, "not_authorized", "the management API needs its X-Api-Key")
    assert capsys.readouterr().err == (
        "error: the service refused the API key (not_authorized): check SERVICE_KEY or --api-key\n"
    )
