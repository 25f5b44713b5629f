"""The API bench's bare limit: one Starlette JSON endpoint under the same uvicorn settings.

    python -m bench._bare_api --port P

`POST /v1/tasks` reads the JSON body and answers 201 with a task-resource-sized
JSON object built from it; no auth, no validation, no Redis. Served exactly as
`relay api` serves the real app (uvicorn.run, loop and http "auto": uvloop and
httptools, no access log).
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def register(request: Request) -> Response:
    body = await request.json()
    return JSONResponse(
        {
            "task_id": body["task_id"],
            "status": "queued",
            "upstream_status": None,
            "progress": None,
            "task_type": None,
            "model": None,
            "result": {"images": [], "grid_image": None, "videos": [], "content": [], "seed": None},
            "error": None,
            "webhook_url": body.get("webhook_url"),
            "events": ["task.succeeded", "task.failed", "task.timed_out"],
            "metadata": body.get("metadata", {}),
            "registered_at": "2026-11-29T10:00:00.000Z",
            "updated_at": "2026-11-29T10:00:00.000Z",
            "completed_at": None,
            "polls": 0,
        },
        status_code=201,
    )


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/v1/tasks", register, methods=["POST"]), Route("/healthz", healthz)])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._bare_api")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
