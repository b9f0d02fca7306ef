"""One deadline for a whole model call, `AI_TIMEOUT_S`, and a bound on the bytes it reads,
`AI_MAX_ANSWER_BYTES`.

The SDKs' `timeout` is httpx's: it bounds each network operation (connecting, each write,
each read), so a server sending its answer a few bytes at a time, each within the timeout,
held a worker thread (and its chunk's lease, until the chunk was delivered again and the call
paid twice) for as long as it liked. Within `call_deadline(seconds)`, every network operation
of the thread's calls is given at most what is left of the deadline, and none starts after
it: the SDK raises its timeout error, retried as any timeout is.

Within `call_deadline(seconds, max_bytes=...)` the bytes read (headers and body) are counted
too: past `max_bytes` the read raises `AnswerTooLarge`. The SDKs read a whole answer into
memory before returning it, so a server (or a proxy before it) answering gigabytes within the
deadline held them in a worker, once per call in flight, until the worker was killed.

The bounds are a network backend wrapping the one httpcore (the SDKs' HTTP library, `httpx2`)
would use, set on each connection pool of an SDK's HTTP client when it is built
(`deadline_client`); a connection made later by the pool reads and writes through it.
"""

import contextlib
import time
from contextvars import ContextVar

import httpcore2
import httpx2

_deadline: ContextVar[float | None] = ContextVar("model_call_deadline", default=None)
# [bytes the call may still read, the bound] (None: no bound).
_read_left: ContextVar[list[int] | None] = ContextVar("model_call_read_left", default=None)


class AnswerTooLarge(httpcore2.ReadError):
    """The call read more than its `max_bytes` (the SDK raises its connection error from
    it: `answer_too_large` finds it)."""


@contextlib.contextmanager
def call_deadline(seconds: float, *, max_bytes: int | None = None):
    """Network operations of the calls made inside end by `seconds` from now, and read at
    most `max_bytes` in all."""
    token = _deadline.set(time.monotonic() + seconds)
    left = _read_left.set(None if max_bytes is None else [max_bytes, max_bytes])
    try:
        yield
    finally:
        _read_left.reset(left)
        _deadline.reset(token)


def answer_too_large(exc: BaseException) -> AnswerTooLarge | None:
    """The `AnswerTooLarge` that `exc` (an SDK's error) was raised from, if any."""
    while exc is not None:
        if isinstance(exc, AnswerTooLarge):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _left(timeout: float | None, expired: type[Exception]) -> float | None:
    """The operation's timeout, cut to what is left of the deadline; `expired` once none
    is left."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the call's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore2.NetworkStream):
    def __init__(self, stream: httpcore2.NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._stream.read(max_bytes, _left(timeout, httpcore2.ReadTimeout))
        left = _read_left.get()
        if left is not None:
            left[0] -= len(data)
            if left[0] < 0:
                raise AnswerTooLarge(f"an answer larger than {left[1]} bytes")
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        timeout = _left(timeout, httpcore2.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore2.NetworkBackend):
    def __init__(self, backend: httpcore2.NetworkBackend):
        self._backend = backend

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        timeout = _left(timeout, httpcore2.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        timeout = _left(timeout, httpcore2.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def deadline_client(client_class: type[httpx2.Client]) -> httpx2.Client:
    """An HTTP client of `client_class` (an SDK's `DefaultHttpxClient`, with the SDK's
    defaults and the environment's proxies) whose calls keep `call_deadline`."""
    client = client_class()
    for transport in [client._transport, *client._mounts.values()]:
        pool = getattr(transport, "_pool", None)  # a proxy mount may be None
        if pool is not None:
            pool._network_backend = _DeadlineBackend(pool._network_backend)
    return client
