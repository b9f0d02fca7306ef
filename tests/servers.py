"""Real HTTP servers on loopback standing in for services outside the product."""

import contextlib
import json
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.fake_batches import FakeBatches


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
    # Past this many requests, each waits for `release` before answering (0: none waits):
    # a test holds its senders mid-send, then lets them go.
    hold_after: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


class LoopbackServer(ThreadingHTTPServer):
    """A test server whose `shutdown()` also frees its port and ends its open connections:
    the LLM stand-ins listen on the one port the session's worker knows, and the next test
    binds it again. A connection the worker keeps alive would otherwise go on being served
    by the old stand-in's thread, with the old test's answers."""

    # The listen backlog, read when the server binds (set later, it would be the default 5):
    # a worker opening AI_MAX_CONCURRENCY connections at once overflows a short one, and the
    # kernel resets the connections it could not queue.
    request_queue_size = 256

    def __init__(self, *args, **kwargs):
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def get_request(self):
        connection, address = super().get_request()
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def shutdown(self) -> None:
        super().shutdown()
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)


def start_receiver() -> tuple[Receiver, ThreadingHTTPServer]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                receiver.requests.append(Received(self.path, dict(self.headers), body, time.time()))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                held = 0 < receiver.hold_after < len(receiver.requests)
            if held:
                receiver.release.wait(timeout=60)
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
    # Usage reported: prompt tokens (cached included, as OpenAI counts them) and of those
    # read from the prompt cache (Anthropic reports the rest as `input_tokens`).
    input_tokens: int = 11
    cached_tokens: int = 0
    output_tokens: int = 7
    # Sent as the body instead of the answer's (an odd server's 200).
    body: dict | list | None = None
    # Seconds between the body's pieces (16 bytes each): every piece comes well within a
    # read timeout, the whole answer only after many.
    drip: float = 0.0


@dataclass
class Buckets:
    """A provider's limits as it enforces them: token buckets for requests and tokens per
    minute, each holding `burst_s` seconds of its rate. A request either fits both (and is
    taken from both) or gets a 429 saying when it would fit."""

    rpm: float
    tpm: float
    burst_s: float = 2.0
    accepted: list[tuple[float, int]] = field(default_factory=list)  # (arrival, tokens)
    rejected: list[float] = field(default_factory=list)
    _levels: list[float] = field(default_factory=list)
    _at: float = 0.0

    def take(self, tokens: int) -> Reply | None:
        now = time.time()
        rates = (self.rpm / 60, self.tpm / 60)
        if not self._levels:
            self._levels, self._at = [rate * self.burst_s for rate in rates], now
        self._levels = [
            min(rate * self.burst_s, level + rate * (now - self._at))
            for rate, level in zip(rates, self._levels, strict=True)
        ]
        self._at = now
        short = [need - level for need, level in zip((1, tokens), self._levels, strict=True)]
        if max(short) > 0:
            self.rejected.append(now)
            wait_ms = max(
                math.ceil(1000 * gap / rate) for gap, rate in zip(short, rates, strict=True)
            )
            return Reply(status=429, error="rate limited", headers={"retry-after-ms": str(wait_ms)})
        self._levels = [level - need for level, need in zip(self._levels, (1, tokens), strict=True)]
        self.accepted.append((now, tokens))
        return None


# Anthropic's error types by status (the SDK maps statuses; batch results carry the type).
ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


@dataclass
class FakeLLM:
    """An OpenAI- or Anthropic-compatible server. `script` replies are used in order, then
    `default`; every request body is recorded with its arrival time. Its batch endpoints
    (`batches`, `tests/fake_batches.py`) answer each batched request the same way."""

    kind: str
    url: str = ""
    script: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=Reply)
    requests: list[dict] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    record: bool = True
    decide: Callable[[dict], Reply | None] | None = None  # a reply chosen per request
    in_flight: int = 0  # requests being answered now, and the most there were at once
    peak_in_flight: int = 0
    # The tokens a request counts (input, output), reported as its usage (default: the
    # reply's); and the limits the server enforces on them.
    usage_of: Callable[[dict], tuple[int, int]] | None = None
    limits: Buckets | None = None
    batches: FakeBatches = field(init=False)

    def __post_init__(self):
        self.batches = FakeBatches(self)

    def choose(self, request: dict, *, limited: bool = True) -> Reply:
        """The reply to a request: `decide`'s, else the limits' 429 (not for batched
        requests), else the next scripted one, else `default`. Call holding `lock`."""
        reply = self.decide(request) if self.decide else None
        if reply is None and limited and self.limits is not None:
            reply = self.limits.take(sum(self.usage_of(request)) if self.usage_of else 18)
        if reply is None:
            reply = self.script.pop(0) if self.script else self.default
        return reply

    def error_body(self, status: int, message: str) -> dict:
        return self.body(Reply(status=status, error=message), {})

    def prompts(self) -> list[str]:
        return [request["messages"][-1]["content"] for request in self.requests]

    def body(self, reply: Reply, request: dict) -> dict:
        if reply.body is not None:
            return reply.body
        model = request.get("model", "fake-model")
        if reply.status != 200:
            if self.kind == "anthropic":
                kind = ANTHROPIC_ERRORS.get(reply.status, "api_error")
                return {"type": "error", "error": {"type": kind, "message": reply.error}}
            return {"error": {"message": reply.error, "type": "server_error", "code": None}}
        used_in, used_out = (
            self.usage_of(request) if self.usage_of else (reply.input_tokens, reply.output_tokens)
        )
        if self.kind == "anthropic":
            return {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [self._anthropic_block(reply.text, request)],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": used_in - reply.cached_tokens,
                    "cache_read_input_tokens": reply.cached_tokens,
                    "cache_creation_input_tokens": 0,
                    "output_tokens": used_out,
                },
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
            "usage": {
                "prompt_tokens": used_in,
                "completion_tokens": used_out,
                "total_tokens": used_in + used_out,
                "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
            },
        }

    @staticmethod
    def _anthropic_block(text: str, request: dict) -> dict:
        """A forced tool is answered with a tool_use block when the text is a JSON object."""
        forced = (request.get("tool_choice") or {}).get("type") == "tool"
        try:
            value = json.loads(text) if forced else None
        except ValueError:
            value = None
        if isinstance(value, dict):
            name = request["tool_choice"]["name"]
            return {"type": "tool_use", "id": "toolu_1", "name": name, "input": value}
        return {"type": "text", "text": text}


def start_llm(kind: str, port: int = 0) -> tuple[FakeLLM, ThreadingHTTPServer]:
    fake = FakeLLM(kind)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every answer.
        disable_nagle_algorithm = True

        def do_GET(self):
            self._batch("GET", b"")

        def _batch(self, method: str, body: bytes):
            status, content_type, payload = fake.batches.handle(
                method, self.path, self.headers, body
            )
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if not fake.batches.drip:
                self.wfile.write(payload)
                return
            try:
                for start in range(0, len(payload), 16):
                    self.wfile.write(payload[start : start + 16])
                    self.wfile.flush()
                    time.sleep(fake.batches.drip)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if "/files" in self.path or "/batches" in self.path:
                self._batch("POST", body)
                return
            request = json.loads(body)
            with fake.lock:
                if fake.record:
                    fake.requests.append(request)
                    fake.times.append(time.time())
                reply = fake.choose(request)
            with fake.lock:
                fake.in_flight += 1
                fake.peak_in_flight = max(fake.peak_in_flight, fake.in_flight)
            try:
                if reply.delay:
                    time.sleep(reply.delay)
            finally:
                with fake.lock:
                    fake.in_flight -= 1
            payload = json.dumps(fake.body(reply, request)).encode()
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if not reply.drip:
                    self.wfile.write(payload)
                for start in range(0, len(payload) if reply.drip else 0, 16):
                    self.wfile.write(payload[start : start + 16])
                    self.wfile.flush()
                    time.sleep(reply.drip)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def log_message(self, *args):
            pass

    server = LoopbackServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
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


@contextlib.contextmanager
def silent_server(hold_for: float = 60):
    """A TCP server on loopback that accepts connections and never says a word (a mail server
    that hangs before its greeting): yields its port. Each connection is closed `hold_for`
    seconds after it came, or when the block ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def hold(connection: socket.socket) -> None:
        with connection:
            stop.wait(timeout=hold_for)

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:  # the listener closed
                return
            threading.Thread(target=hold, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


@dataclass
class MailServer:
    """An SMTP server on loopback taking every message after `AUTH PLAIN` or `AUTH LOGIN`
    (any credentials, recorded): `logins` the (user, password) pairs, `messages` each
    message's envelope recipients and data."""

    port: int = 0
    logins: list[tuple[str, str]] = field(default_factory=list)
    messages: list[tuple[list[str], bytes]] = field(default_factory=list)


@contextlib.contextmanager
def mail_server():
    import base64
    import socketserver

    server = MailServer()

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        def handle(self) -> None:
            self.reply("220 test mail server")
            recipients: list[str] = []
            while line := self.rfile.readline():
                verb, _, rest = line.decode().strip().partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    self.reply("250-test")
                    self.reply("250 AUTH PLAIN LOGIN")
                elif verb == "AUTH" and rest.upper().startswith("PLAIN"):
                    _, user, password = base64.b64decode(rest.split()[1]).decode().split("\0")
                    server.logins.append((user, password))
                    self.reply("235 ok")
                elif verb == "AUTH":  # LOGIN: the user and the password asked for in turn
                    self.reply("334 VXNlcm5hbWU6")
                    user = base64.b64decode(self.rfile.readline().strip()).decode()
                    self.reply("334 UGFzc3dvcmQ6")
                    password = base64.b64decode(self.rfile.readline().strip()).decode()
                    server.logins.append((user, password))
                    self.reply("235 ok")
                elif verb == "RCPT":
                    recipients.append(rest.split(":", 1)[1].strip("<> "))
                    self.reply("250 ok")
                elif verb == "DATA":
                    self.reply("354 go on")
                    data = b""
                    while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                        data += chunk
                    server.messages.append((recipients, data))
                    recipients = []
                    self.reply("250 ok")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                else:  # HELO, MAIL, RSET, NOOP
                    self.reply("250 ok")

    class Threaded(socketserver.ThreadingMixIn, socketserver.TCPServer):
        daemon_threads = True

    with Threaded(("127.0.0.1", 0), Handler) as tcp:
        server.port = tcp.server_address[1]
        threading.Thread(target=tcp.serve_forever, daemon=True).start()
        try:
            yield server
        finally:
            tcp.shutdown()
