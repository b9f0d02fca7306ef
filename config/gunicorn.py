"""Gunicorn settings (`gunicorn -c config/gunicorn.py config.wsgi`); the command line adds
the bind address and the worker count.

A request that outlives gunicorn's `timeout` gets the API's JSON error shape (a 503, code
`request_timeout`) instead of gunicorn's HTML "Internal Server Error": when the arbiter aborts
the worker (SIGABRT), `worker_abort` writes the answer to each client still waiting for one,
before the worker exits. No Django here: this file is read before the application loads.
"""

import gc
import json
import socket
import threading

# The client socket of each request whose answer has not started, by handling thread.
_waiting: dict[int, socket.socket] = {}


class _RememberClients:
    """WSGI middleware: holds each request's socket (gunicorn puts it in the environ) until
    the application starts its answer, so an abort knows whom to answer."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        thread = threading.get_ident()
        client = environ.get("gunicorn.socket")
        if client is not None:
            _waiting[thread] = client

        def answer_started(status, headers, exc_info=None):
            _waiting.pop(thread, None)
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, answer_started)
        finally:
            _waiting.pop(thread, None)


def post_worker_init(worker) -> None:
    """Keep the objects of a loaded worker (Django, DRF, the URL conf, the step types) out of
    the garbage collector's full passes, which would otherwise walk them all every few
    hundred requests; and remember each request's client until its answer starts."""
    worker.wsgi = _RememberClients(worker.wsgi)
    gc.freeze()


def timeout_response(timeout: int) -> bytes:
    """The bytes of a complete HTTP answer: the API's error shape, as a 503."""
    message = (
        f"The request took longer than the server's limit of {timeout} s and was stopped; "
        "anything it had not committed was not saved."
    )
    body = json.dumps(
        {"error": {"code": "request_timeout", "message": message, "details": []}}
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def worker_abort(worker) -> None:
    """Gunicorn's timeout fired: answer every client still waiting, then let the worker die.
    Closing our side for writing makes gunicorn's own HTML error (written next) fail
    quietly instead of following ours."""
    answer = timeout_response(worker.cfg.timeout)
    for client in list(_waiting.values()):
        try:
            client.settimeout(1)  # a client that does not read must not hold up the abort
            client.sendall(answer)
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the client is gone: there is no one to tell
    _waiting.clear()
