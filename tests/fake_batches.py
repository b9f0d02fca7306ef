"""The batch endpoints of the LLM stand-ins (`tests/servers.py`, `FakeLLM.batches`).

OpenAI: `POST /v1/files` (multipart, purpose batch), `GET /v1/files/:id/content`,
`POST /v1/batches`, `GET /v1/batches` (newest first, `limit`/`after`), `GET /v1/batches/:id`,
`POST /v1/batches/:id/cancel`. Anthropic: `POST /v1/messages/batches`,
`GET /v1/messages/batches/:id`, `GET /v1/messages/batches/:id/results` (JSONL),
`POST /v1/messages/batches/:id/cancel`.

A batch ends `delay` seconds after it was created (seen by the next request that looks at
it; `math.inf` holds it until `finish()`), and then each of its requests is answered as the
sync endpoint would answer it (`FakeLLM.choose` and `FakeLLM.body`: `decide`, `script`,
`default`; a reply with an error status becomes that request's error). Results are real
JSONL files, as the providers serve them.
"""

import email
import json
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."
CANCELLED_MESSAGE = "This request was not executed because the batch was cancelled."


def _rfc3339(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat()


@dataclass
class FakeBatch:
    """One batch as the fake holds it. `requests` are as sent: OpenAI's JSONL lines
    (`custom_id`, `method`, `url`, `body`), Anthropic's `{custom_id, params}`."""

    id: str
    requests: list[dict]
    metadata: dict = field(default_factory=dict)
    input_file_id: str = ""
    created_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    cancel_requested_at: float | None = None
    rejected: str = ""  # the reason, for a batch OpenAI rejected (status "failed")
    # Once ended: each request's result line (the provider's JSONL shape).
    results: list[dict] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None

    def body(self, request: dict) -> dict:
        """What a request asked for: the chat completion body or the Messages params."""
        return request.get("body") or request.get("params") or {}


@dataclass
class FakeBatches:
    """A FakeLLM's batch state. Tests set `delay`, `expire` (custom_ids that expire
        instead of running), `reject` (the reason the next created batch is rejected with),
        `script` (replies to the next batch API calls themselves, e.g. a 500), `garbage` (raw lines
    added to every batch's results as it ends: not JSON, cut short, naming no request), `drip`
        (answers sent a few bytes at a time), and read
        `submissions` (every batch created, in order), `cancels` (batch ids a cancel was asked
        for), `lists` (how many times batches were listed) and `files` (uploads by id)."""

    llm: object
    delay: float = 0.0
    expire: set[str] = field(default_factory=set)
    reject: str = ""
    script: list = field(default_factory=list)
    garbage: list[str] = field(default_factory=list)
    drip: float = 0.0  # seconds between the 16-byte pieces of every answer (0: at once)
    submissions: list[FakeBatch] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    lists: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _next: int = 0

    def finish(self, batch_id: str | None = None) -> None:
        """End the batch now (every open one without an id)."""
        with self.lock:
            for batch in self.submissions:
                if batch_id in (None, batch.id) and batch.ended_at is None:
                    self._end(batch, cancelled=False)

    def get(self, batch_id: str) -> FakeBatch | None:
        with self.lock:
            return next((b for b in self.submissions if b.id == batch_id), None)

    def handle(self, method: str, path: str, headers, body: bytes) -> tuple[int, str, bytes]:
        """Answers one request to a batch endpoint: (status, content type, body)."""
        with self.lock:
            if self.script:
                reply = self.script.pop(0)
                return reply.status, "application/json", self._json(self.llm.body(reply, {}))
            url = urlsplit(path)
            parts = url.path.strip("/").split("/")[1:]  # after "v1"
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if parts[0] == "files":
                return self._files(method, parts, headers, body)
            if parts[0] == "batches":
                return self._openai(method, parts, query, body)
            return self._anthropic(method, parts[2:], body)

    # OpenAI

    def _files(self, method, parts, headers, body):
        if method == "POST":
            head = f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode()
            fields = {}
            for part in email.message_from_bytes(head + body).get_payload():
                name = part.get_param("name", header="content-disposition")
                fields[name] = part.get_payload(decode=True)
            if fields.get("purpose") != b"batch":
                return self._error(400, "purpose must be batch here")
            file_id = self._id("file-")
            self.files[file_id] = fields["file"]
            return 200, "application/json", self._json(self._file(file_id))
        content = self.files.get(parts[1])
        if content is None:
            return self._error(404, f"No such File object: {parts[1]}")
        return 200, "application/octet-stream", content

    def _file(self, file_id):
        size = len(self.files[file_id])
        return {
            "id": file_id,
            "object": "file",
            "bytes": size,
            "created_at": int(time.time()),
            "filename": "batch.jsonl",
            "purpose": "batch",
            "status": "processed",
        }

    def _openai(self, method, parts, query, body):
        if method == "POST" and len(parts) == 1:
            request = json.loads(body)
            content = self.files.get(request["input_file_id"])
            if content is None:
                return self._error(404, f"No such File object: {request['input_file_id']}")
            lines = [json.loads(line) for line in content.decode().splitlines() if line.strip()]
            batch = FakeBatch(
                self._id("batch_"), lines, request.get("metadata") or {}, request["input_file_id"]
            )
            self.submissions.append(batch)
            if self.reject:
                batch.rejected, self.reject = self.reject, ""
                batch.ended_at = time.time()
            return 200, "application/json", self._json(self._openai_batch(batch))
        if method == "GET" and len(parts) == 1:
            self.lists += 1
            newest = list(reversed(self.submissions))
            if "after" in query:
                ids = [b.id for b in newest]
                newest = newest[ids.index(query["after"]) + 1 :] if query["after"] in ids else []
            limit = int(query.get("limit", 20))
            page = newest[:limit]
            answer = {
                "object": "list",
                "data": [self._openai_batch(self._advanced(b)) for b in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": len(newest) > limit,
            }
            return 200, "application/json", self._json(answer)
        batch = self.get(parts[1])
        if batch is None:
            return self._error(404, f"No batch found with id '{parts[1]}'.")
        if method == "POST":  # cancel
            self.cancels.append(batch.id)
            self._advanced(batch)
            if batch.ended_at is not None:
                status = self._openai_status(batch)
                return self._error(400, f"Cannot cancel a batch with status '{status}'.")
            batch.cancel_requested_at = time.time()
            return 200, "application/json", self._json(self._openai_batch(batch))
        return 200, "application/json", self._json(self._openai_batch(self._advanced(batch)))

    def _openai_status(self, batch: FakeBatch) -> str:
        if batch.rejected:
            return "failed"
        if batch.ended_at is None:
            return "cancelling" if batch.cancel_requested_at else "in_progress"
        if batch.cancel_requested_at:
            return "cancelled"
        if any((line.get("error") or {}).get("code") == "batch_expired" for line in batch.results):
            return "expired"
        return "completed"

    def _openai_batch(self, batch: FakeBatch) -> dict:
        ok = sum(
            1 for line in batch.results if (line.get("response") or {}).get("status_code") == 200
        )
        ended = batch.ended_at is not None and not batch.rejected
        errors = None
        if batch.rejected:
            errors = {
                "object": "list",
                "data": [{"code": "invalid_request", "message": batch.rejected, "line": None}],
            }
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": errors,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": self._openai_status(batch),
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": int(batch.created_at),
            "completed_at": int(batch.ended_at) if ended else None,
            "request_counts": {
                "total": len(batch.requests),
                "completed": ok,
                "failed": len(batch.results) - ok if ended else 0,
            },
            "metadata": batch.metadata,
        }

    # Anthropic

    def _anthropic(self, method, parts, body):
        if method == "POST" and not parts:
            if self.reject:
                reason, self.reject = self.reject, ""
                return self._error(400, reason)
            batch = FakeBatch(self._id("msgbatch_"), json.loads(body)["requests"])
            self.submissions.append(batch)
            return 200, "application/json", self._json(self._anthropic_batch(batch))
        batch = self.get(parts[0])
        if batch is None:
            return self._error(404, f"No batch found with id '{parts[0]}'.")
        self._advanced(batch)
        if parts[1:] == ["cancel"]:
            self.cancels.append(batch.id)
            if batch.ended_at is None:
                batch.cancel_requested_at = time.time()
        elif parts[1:] == ["results"]:
            if batch.ended_at is None:
                return self._error(400, f"Batch '{batch.id}' has not finished processing.")
            jsonl = "".join(json.dumps(line) + "\n" for line in batch.results)
            return 200, "application/binary", (jsonl + self._garbage()).encode()
        return 200, "application/json", self._json(self._anthropic_batch(batch))

    def _anthropic_batch(self, batch: FakeBatch) -> dict:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch.ended_at is None:
            counts["processing"] = len(batch.requests)
        for line in batch.results:
            counts[line["result"]["type"]] += 1
        ended = batch.ended_at is not None
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": (
                "ended" if ended else "canceling" if batch.cancel_requested_at else "in_progress"
            ),
            "request_counts": counts,
            "created_at": _rfc3339(batch.created_at),
            "expires_at": _rfc3339(batch.created_at + 86400),
            "ended_at": _rfc3339(batch.ended_at),
            "cancel_initiated_at": _rfc3339(batch.cancel_requested_at),
            "archived_at": None,
            "results_url": (
                f"{self.llm.url}/v1/messages/batches/{batch.id}/results" if ended else None
            ),
        }

    # Both

    def _advanced(self, batch: FakeBatch) -> FakeBatch:
        """Ends the batch if its time has come (or its cancel was asked for)."""
        if batch.ended_at is None:
            if batch.cancel_requested_at is not None:
                self._end(batch, cancelled=True)
            elif not math.isinf(self.delay) and time.time() >= batch.created_at + self.delay:
                self._end(batch, cancelled=False)
        return batch

    def _end(self, batch: FakeBatch, *, cancelled: bool) -> None:
        batch.ended_at = time.time()
        anthropic = self.llm.kind == "anthropic"
        for n, request in enumerate(batch.requests):
            custom_id = request["custom_id"]
            if cancelled:
                line = self._unrun(custom_id, "canceled", "batch_cancelled", CANCELLED_MESSAGE)
            elif custom_id in self.expire:
                line = self._unrun(custom_id, "expired", "batch_expired", EXPIRED_MESSAGE)
            else:
                with self.llm.lock:
                    reply = self.llm.choose(batch.body(request), limited=False)
                answer = self.llm.body(reply, batch.body(request))
                if anthropic and reply.status == 200:
                    line = {"type": "succeeded", "message": answer}
                elif anthropic:
                    line = {"type": "errored", "error": answer}
                else:
                    line = {
                        "id": f"batch_req_{n}",
                        "custom_id": custom_id,
                        "response": {
                            "status_code": reply.status,
                            "request_id": f"req_{n}",
                            "body": answer,
                        },
                        "error": None,
                    }
                if anthropic:
                    line = {"custom_id": custom_id, "result": line}
            batch.results.append(line)
        if not anthropic:
            ok = [r for r in batch.results if (r.get("response") or {}).get("status_code") == 200]
            failed = [r for r in batch.results if r not in ok]
            batch.output_file_id = self._results_file(ok)
            batch.error_file_id = self._results_file(failed)
            if self.garbage:
                file_id = batch.output_file_id or self._results_file([])
                self.files[file_id] = self.files[file_id] + self._garbage().encode()
                batch.output_file_id = file_id

    def _unrun(self, custom_id: str, kind: str, code: str, message: str) -> dict:
        if self.llm.kind == "anthropic":
            return {"custom_id": custom_id, "result": {"type": kind}}
        return {
            "id": f"batch_req_{custom_id}",
            "custom_id": custom_id,
            "response": None,
            "error": {"code": code, "message": message},
        }

    def _garbage(self) -> str:
        return "".join(line + "\n" for line in self.garbage)

    def _results_file(self, lines: list[dict]) -> str | None:
        if not lines and not self.garbage:
            return None
        file_id = self._id("file-")
        self.files[file_id] = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return file_id

    def _id(self, prefix: str) -> str:
        self._next += 1
        return f"{prefix}{self._next}"

    def _error(self, status: int, message: str) -> tuple[int, str, bytes]:
        return status, "application/json", self._json(self.llm.error_body(status, message))

    @staticmethod
    def _json(value) -> bytes:
        return json.dumps(value).encode()
