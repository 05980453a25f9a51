"""The typed Python client of the authority's admin API (``/admin``, header ``X-Api-Key``): the
operator's SDK, and what ``dataspace authority requests|approve|reject|participants|revoke``
call. Answers are the routes' views (:mod:`broker.authority.views`); every refusal raises
:class:`service.client.ApiError` with the authority's typed body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.authority.store import Decision, RequestStatus
from broker.authority.views import AuditPage, IssuedCredentialView, RequestView
from identity.claims import OrganisationClaims
from service.client import ApiClient, body_of, segment


class AdminClient(ApiClient):
    """``AdminClient(authority_base_url, operator_api_key)``."""

    def requests(self, status: RequestStatus | None = None) -> list[RequestView]:
        """Credential requests, ``RECEIVED`` ones waiting for the operator."""
        params = None if status is None else {"status": status.value}
        return self._read(list[RequestView], "GET", "/admin/requests", params=params)

    def approve(
        self, request_id: str, organisation: OrganisationClaims | Mapping[str, Any]
    ) -> RequestView:
        """Issue the requested credentials with these organisation claims, and deliver them."""
        path = f"/admin/requests/{segment(request_id)}/approve"
        body = {"organisation": body_of(organisation)}
        return self._read(RequestView, "POST", path, json=body)

    def reject(self, request_id: str, reason: str) -> RequestView:
        path = f"/admin/requests/{segment(request_id)}/reject"
        return self._read(RequestView, "POST", path, json={"reason": reason})

    def credentials(self, holder: str | None = None) -> list[IssuedCredentialView]:
        """The credentials issued (to one holder, or to all): the data space's participants."""
        params = None if holder is None else {"holder": holder}
        return self._read(list[IssuedCredentialView], "GET", "/admin/credentials", params=params)

    def revoke(self, credential_id: str) -> IssuedCredentialView:
        path = f"/admin/credentials/{segment(credential_id)}/revoke"
        return self._read(IssuedCredentialView, "POST", path)

    def audit(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        subject: str | None = None,
        decision: Decision | None = None,
    ) -> AuditPage:
        params = {
            "offset": offset,
            "limit": limit,
            "subject": subject,
            "decision": None if decision is None else decision.value,
        }
        return self._read(AuditPage, "GET", "/admin/audit", params=params)
