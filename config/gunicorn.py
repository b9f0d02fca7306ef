"""Gunicorn settings (`gunicorn -c config/gunicorn.py config.wsgi`); the command line adds
the bind address and the worker count."""

import gc


def post_worker_init(worker) -> None:
    """Keep the objects of a loaded worker (Django, DRF, the URL conf, the step types) out of
    the garbage collector's full passes, which would otherwise walk them all every few
    hundred requests."""
    gc.freeze()
