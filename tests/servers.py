"""Real HTTP servers on loopback standing in for services outside the product."""

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    at: float = 0.0  # time.time() when it arrived

    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver: records every POST and answers with the scripted statuses
    (then 200)."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0  # seconds to wait before answering (after recording)
    redirect_to: str = ""  # answer `redirect_status` with this Location
    redirect_status: int = 302
    answer_bytes: int = 0  # answer 200 with a body this long, written until the client leaves
    drip: tuple[str, int, float] | None = None  # ("headers" | "body", bytes, seconds apart)
    sent: int = 0  # bytes of `answer_bytes` or `drip` written before the client left
    lock: threading.Lock = field(default_factory=threading.Lock)


def start_receiver() -> tuple[Receiver, ThreadingHTTPServer]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                receiver.requests.append(Received(self.path, dict(self.headers), body, time.time()))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
            if receiver.delay:
                time.sleep(receiver.delay)
            if receiver.redirect_to:
                self.send_response(receiver.redirect_status)
                self.send_header("Location", receiver.redirect_to)
                self.end_headers()
                return
            try:
                if receiver.answer_bytes:
                    self._answer_endlessly()
                    return
                if receiver.drip:
                    self._drip(*receiver.drip)
                    return
            except (BrokenPipeError, ConnectionResetError):
                return  # the client stopped reading: what was sent is in `receiver.sent`
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def _answer_endlessly(self):
            self.send_response(200)
            self.send_header("Content-Length", str(receiver.answer_bytes))
            self.end_headers()
            block = b"x" * 65536
            while receiver.sent < receiver.answer_bytes:
                self.wfile.write(block)
                receiver.sent += len(block)

        def _drip(self, where: str, count: int, every: float):
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            if where == "headers":
                self.wfile.write(b"X-Slow: ")
            else:
                self.wfile.write(f"Content-Length: {count}\r\n\r\n".encode())
            for _ in range(count):
                self.wfile.write(b"x")
                self.wfile.flush()
                receiver.sent += 1
                time.sleep(every)
            if where == "headers":
                self.wfile.write(b"\r\nContent-Length: 0\r\n\r\n")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server


@dataclass
class Reply:
    status: int = 200
    text: str = "A generated answer."
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    error: str = "Something went wrong"


@dataclass
class FakeLLM:
    """An OpenAI- or Anthropic-compatible server. `script` replies are used in order, then
    `default`; every request body is recorded with its arrival time."""

    kind: str
    url: str = ""
    script: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=Reply)
    requests: list[dict] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    record: bool = True
    decide: Callable[[dict], Reply | None] | None = None  # a reply chosen per request

    def prompts(self) -> list[str]:
        return [request["messages"][-1]["content"] for request in self.requests]

    def body(self, reply: Reply, request: dict) -> dict:
        model = request.get("model", "fake-model")
        if reply.status != 200:
            if self.kind == "anthropic":
                return {"type": "error", "error": {"type": "api_error", "message": reply.error}}
            return {"error": {"message": reply.error, "type": "server_error", "code": None}}
        if self.kind == "anthropic":
            return {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": reply.text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 11, "output_tokens": 7},
            }
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": reply.text},
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }


def start_llm(kind: str, port: int = 0) -> tuple[FakeLLM, ThreadingHTTPServer]:
    fake = FakeLLM(kind)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every answer.
        disable_nagle_algorithm = True

        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with fake.lock:
                if fake.record:
                    fake.requests.append(request)
                    fake.times.append(time.time())
                reply = fake.decide(request) if fake.decide else None
                if reply is None:
                    reply = fake.script.pop(0) if fake.script else fake.default
            if reply.delay:
                time.sleep(reply.delay)
            payload = json.dumps(fake.body(reply, request)).encode()
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 128
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake, server


def start_schema_host() -> tuple[str, list[str], ThreadingHTTPServer]:
    """A host serving a JSON Schema to any GET, recording each path it is asked for: what a
    `$ref` to it would fetch (the tests check it is never asked)."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = json.dumps({"type": "object", "properties": {"secret": {"const": "s3cr3t"}}})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", hits, server
