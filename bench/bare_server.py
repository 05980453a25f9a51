"""The baseline of the data-plane benchmark: a bare uvicorn ``StreamingResponse`` of one file
in 1 MiB chunks, nothing else. Run: ``python -m bench.bare_server FILE PORT``."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

CHUNK = 1024 * 1024


def create_app(path: str) -> FastAPI:
    app = FastAPI()

    @app.get("/file")
    def file() -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    yield chunk

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    uvicorn.run(
        create_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning"
    )
