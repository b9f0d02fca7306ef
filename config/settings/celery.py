"""Celery: the broker, the result backend and the delivery guarantees the pipeline relies on."""

from kombu import Exchange, Queue

from config.env import BASE_DIR, env_int, env_str
from config.settings.workflows import WAITS_TICK_EXPIRES_S, WAITS_TICK_S

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport: a broker that needs no server, for the embedded defaults.
    _broker_dir = BASE_DIR / "var" / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # Where it keeps its exchange tables; unset, it writes `control/` in the working folder.
        "control_folder": str(_broker_dir / "control"),
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # An unacknowledged chunk (its worker machine died) is delivered again after this.
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=10),
    }
else:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL={CELERY_BROKER_URL!r} is not supported: "
        "use redis://host:6379/0 or filesystem://"
    )

# The cache holds the API throttles and users' permissions (config.api.auth_backends): shared
# (Redis) when the broker is Redis. Permissions are kept only in a shared cache, where a change
# made by one process reaches the others; for at most PERMISSIONS_CACHE_S what bypasses the
# models' signals (SQL) is not seen.
PERMISSIONS_CACHE_S = 0
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env_str("CACHE_URL", CELERY_BROKER_URL),
            "KEY_PREFIX": "workflows",
        }
    }
    PERMISSIONS_CACHE_S = env_int("PERMISSIONS_CACHE_S", 60, minimum=0)

CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_STORE_ERRORS_EVEN_IF_IGNORED = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Acknowledge after the work, and give a chunk back when its worker process dies, so a
# killed worker's chunk is delivered again; the chunk's items are claimed idempotently.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes the database connections around every task unless this is
# set; connections follow Django's CONN_MAX_AGE instead (config/celery.py).
CELERY_DB_REUSE_MAX = 1_000_000
CELERY_TASK_ALWAYS_EAGER = False
# Two queues: `celery` for the runs' chunks and everything else, and `waits` for the ticks of
# the waits and the resumes of resolved waits, which a worker of its own consumes (the
# Procfile's `waits`), so a delay goes on at its time and a decision resumes its entities
# while a run's chunks fill the other queue. A worker started without `-Q` consumes both.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name) for name in (CELERY_TASK_DEFAULT_QUEUE, "waits")
]
CELERY_TASK_ROUTES = {
    "jobs.tasks.tick_waits": {"queue": "waits"},
    "jobs.tasks.resume_waits": {"queue": "waits"},
}

# Beat reads its schedule from the database (django-celery-beat's PeriodicTask rows): the
# entries below are written there when beat starts, beside one row per schedule trigger of a
# workflow (jobs/schedules.py). Each cron runs in its trigger's own time zone.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

CELERY_BEAT_SCHEDULE = {
    "resume-stalled-runs": {"task": "jobs.tasks.resume_stalled_runs", "schedule": 60.0},
    # The entity outbox's safety net: events whose dispatch was never queued (the web
    # process died after COMMIT, the broker was down) start their runs within this.
    "sweep-entity-events": {"task": "jobs.tasks.dispatch_triggers", "schedule": 15.0},
    # Every kind of wait, each deciding what is due (a review's expiry; a provider batch
    # polled every AI_BATCH_POLL_S, or submitted when a dead worker left it unsent).
    # `expire_seconds`: django-celery-beat's name for the messages' `expires` (its scheduler
    # drops an `expires` given here); a stale tick is dropped, not run (WAITS_TICK_EXPIRES_S).
    "tick-waits": {
        "task": "jobs.tasks.tick_waits",
        "schedule": WAITS_TICK_S,
        "options": {"expire_seconds": WAITS_TICK_EXPIRES_S},
    },
    # Retention (jobs/retention.py): old ended runs and expired idempotency records, in
    # bounded batches; the task queues the next batch itself while more is left.
    "prune-old-records": {"task": "jobs.tasks.prune_old_records", "schedule": 3600.0},
}
