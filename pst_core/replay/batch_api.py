"""A minimal OpenAI Batch API on the replay server: files, batches, output and error files.

`POST /v1/files` (multipart, purpose=batch), `GET /v1/files/{id}` and `/v1/files/{id}/content`,
`POST /v1/batches`, `GET /v1/batches/{id}`. A batch turns "completed" `batch_delay_s` after it
is created; each line is answered like an online request, and the server-error fault rate
(`rate_500`) decides which lines land in the error file instead, so resubmission can be tested.
A line no recorded output fits lands there too: status 404, error code "unmatched". Stats count
`batch_lines`, `batch_errors`, `batch_unmatched` and `batches`.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from pst_core.harvest.client import _dumps, _loads


def add_routes(app, replay) -> None:
    """Register the files and batches endpoints on `app` for the Replay state `replay`."""
    from aiohttp import web

    def respond(obj: dict, status: int = 200) -> web.Response:
        return web.Response(body=_dumps(obj), status=status, content_type="application/json")

    def not_found(what: str) -> web.Response:
        return respond({"error": {"message": f"no such {what}", "type": "invalid_request_error"}}, 404)

    def new_file(content: bytes, purpose: str, filename: str) -> dict:
        fid = f"file-{uuid.uuid4().hex[:24]}"
        meta = {"id": fid, "object": "file", "bytes": len(content), "created_at": int(time.time()), "filename": filename, "purpose": purpose, "status": "processed"}
        replay.files[fid] = {"meta": meta, "content": content}
        return meta

    async def upload(request: web.Request) -> web.Response:
        form = await request.post()
        field = form.get("file")
        if field is None or not hasattr(field, "file"):
            return respond({"error": {"message": "missing file", "type": "invalid_request_error"}}, 400)
        return respond(new_file(field.file.read(), str(form.get("purpose", "batch")), field.filename or "upload.jsonl"))

    async def file_meta(request: web.Request) -> web.Response:
        f = replay.files.get(request.match_info["fid"])
        return respond(f["meta"]) if f else not_found("file")

    async def file_content(request: web.Request) -> web.Response:
        f = replay.files.get(request.match_info["fid"])
        return web.Response(body=f["content"], content_type="application/octet-stream") if f else not_found("file")

    def run_batch(bid: str) -> None:
        batch = replay.batches[bid]
        lines = replay.files[batch["input_file_id"]]["content"].decode().splitlines()
        out, err = [], []
        chat = batch["endpoint"].endswith("chat/completions")
        for line in filter(str.strip, lines):
            req = _loads(line)
            replay.stats["batch_lines"] += 1
            rid = f"batch_req_{uuid.uuid4().hex[:16]}"
            if replay.fault(_dumps(req["body"])) == "server_error":
                replay.stats["batch_errors"] += 1
                err.append({"id": rid, "custom_id": req["custom_id"], "response": {"status_code": 500, "request_id": rid, "body": {"error": {"message": "replay fault", "type": "server_error"}}}, "error": None})
                continue
            body, outcome = replay.complete(req["body"], chat)
            if outcome == "unmatched":
                replay.stats["batch_unmatched"] += 1
                err.append({"id": rid, "custom_id": req["custom_id"], "response": {"status_code": 404, "request_id": rid, "body": body}, "error": dict(body["error"])})
                continue
            out.append({"id": rid, "custom_id": req["custom_id"], "response": {"status_code": 200, "request_id": rid, "body": body}, "error": None})
        jsonl = lambda rows: b"".join(_dumps(r) + b"\n" for r in rows)  # noqa: E731
        batch["output_file_id"] = new_file(jsonl(out), "batch_output", "output.jsonl")["id"] if out else None
        batch["error_file_id"] = new_file(jsonl(err), "batch_output", "errors.jsonl")["id"] if err else None
        batch["request_counts"] = {"total": len(out) + len(err), "completed": len(out), "failed": len(err)}
        batch["status"], batch["completed_at"] = "completed", int(time.time())

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("input_file_id") not in replay.files:
            return not_found("input file")
        bid = f"batch_{uuid.uuid4().hex[:24]}"
        replay.batches[bid] = {
            "id": bid, "object": "batch", "endpoint": body.get("endpoint", "/v1/chat/completions"),
            "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window", "24h"),
            "status": "in_progress", "created_at": int(time.time()), "output_file_id": None, "error_file_id": None,
            "errors": None, "metadata": body.get("metadata"), "request_counts": {"total": 0, "completed": 0, "failed": 0},
        }
        replay.stats["batches"] += 1
        asyncio.get_running_loop().call_later(replay.faults.batch_delay_s, run_batch, bid)
        return respond(replay.batches[bid])

    async def retrieve(request: web.Request) -> web.Response:
        b = replay.batches.get(request.match_info["bid"])
        return respond(b) if b else not_found("batch")

    app.router.add_post("/v1/files", upload)
    app.router.add_get("/v1/files/{fid}", file_meta)
    app.router.add_get("/v1/files/{fid}/content", file_content)
    app.router.add_post("/v1/batches", create)
    app.router.add_get("/v1/batches/{bid}", retrieve)
