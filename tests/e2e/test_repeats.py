"""At-least-once delivery without a split: every DSP message between the two connectors is
delivered, and its answer lost, the first time (what a crash between delivery and "sent", or
between the receiver's commit and its reply, looks like to the sender). The sender sends it
again; the receiver recognises the repeat, answers as the first time and changes nothing. The
negotiation ends FINALIZED and the transfer COMPLETED on both sides, nothing is terminated."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_in_memory import BUREAU, KEY, Router, exchange, until


class LossyRouter(Router):
    """Delivers each DSP message, then loses the answer to its first delivery."""

    def __init__(self) -> None:
        super().__init__()
        self.lost: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        path = request.url.path
        moves = path.startswith("/dsp/") and "/catalog/" not in path
        if request.method == "POST" and moves and response.is_success:
            body = await response.aread()
            key = f"{request.url.host}{path}:{hash(request.content)}"
            self.lost[key] += 1
            if self.lost[key] == 1:
                raise httpx.ReadError("the answer was lost", request=request)
            return httpx.Response(response.status_code, headers=response.headers, content=body)
        return response


def test_every_message_delivered_twice_makes_no_split(tmp_path: Path) -> None:
    router = LossyRouter()
    seen: dict[str, Any] = {}

    async def transfer(client: httpx.AsyncClient, negotiation: dict[str, Any]) -> dict[str, Any]:
        bank, bureau = "http://bank.test/management/v1", "http://bureau.test/management/v1"
        started = (
            await client.post(
                f"{bank}/transfers",
                headers=KEY,
                json={"counterPartyId": BUREAU, "counterPartyAddress": "http://bureau.test/dsp",
                      "agreementId": negotiation["agreementId"], "format": "HttpData-PULL"},
            )
        ).json()  # fmt: skip

        async def state(url: str) -> str:
            answer: str = (await client.get(url, headers=KEY)).json()["state"]
            return answer

        mine = f"{bank}/transfers/{started['id']}"

        async def running() -> bool:
            return await state(mine) == "STARTED"

        await until(running)
        done = await client.post(f"{mine}/complete", headers=KEY, json={})
        assert done.status_code == 200, done.text

        async def completed() -> bool:
            return await state(mine) == "COMPLETED"

        await until(completed)

        async def all_repeated() -> bool:  # every lost answer's message was sent again
            return len(router.lost) >= 7 and min(router.lost.values()) >= 2

        await until(all_repeated)
        await asyncio.sleep(0.5)  # a late refusal would terminate now
        theirs = (await client.get(f"{bureau}/transfers", headers=KEY)).json()["items"]
        negotiations = (await client.get(f"{bureau}/negotiations", headers=KEY)).json()["items"]
        seen.update(
            bank_negotiation=(await client.get(
                f"{bank}/negotiations/{negotiation['id']}", headers=KEY)).json()["state"],
            bureau_negotiations=[n["state"] for n in negotiations],
            bank_transfer=await state(mine),
            bureau_transfers=[t["state"] for t in theirs],
        )  # fmt: skip
        return negotiation

    asyncio.run(exchange(tmp_path, router, transfer))
    assert seen == {
        "bank_negotiation": "FINALIZED",
        "bureau_negotiations": ["FINALIZED"],
        "bank_transfer": "COMPLETED",
        "bureau_transfers": ["COMPLETED"],
    }
    repeated = [key for key, times in router.lost.items() if times > 1]
    # request, agreement, verification, finalized, transfer request, start, completion
    assert len(repeated) >= 7, router.lost
