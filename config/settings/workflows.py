"""Limits and knobs of workflows and runs."""

from django.core.exceptions import ImproperlyConfigured

from config.allowlist import parse_allowed_host
from config.env import env_bool, env_choice, env_float, env_int, env_list, env_prices, env_str

WORKFLOW_MAX_STEPS = env_int("WORKFLOW_MAX_STEPS", 50, minimum=1)
# The wall-clock limit of one template render (web and worker alike), and of all the renders
# of one entity's step or of one estimate's sample together.
TEMPLATE_RENDER_TIMEOUT_S = env_float("TEMPLATE_RENDER_TIMEOUT_S", 5.0, minimum=0.01)

# The LLM providers, declared once: workflows.providers binds each name to its class.
AI_PROVIDERS = ("local", "openai", "anthropic")
AI_PROVIDER = env_choice("AI_PROVIDER", "local", AI_PROVIDERS)
AI_MODEL = env_str("AI_MODEL", "")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL", "")
OPENAI_API_KEY = env_str("OPENAI_API_KEY", "")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL", "")
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY", "")
# A step's jsonSchema goes to OpenAI as structured outputs (response_format json_schema);
# false for OpenAI-compatible servers without them, which then get json_object.
AI_OPENAI_STRUCTURED_OUTPUTS = env_bool("AI_OPENAI_STRUCTURED_OUTPUTS", True)
AI_MAX_CONCURRENCY = env_int("AI_MAX_CONCURRENCY", 16, minimum=1)
# A run whose workflow has an ai_generate step goes in chunks of at most this many
# entities, as many chunks as spread its slow calls evenly over WORKER_CONCURRENCY worker
# processes (each keeping up to AI_MAX_CONCURRENCY in flight) instead of queued behind one
# (workflows/steps/chunking.py).
AI_RUN_CHUNK_SIZE = env_int("AI_RUN_CHUNK_SIZE", 16 * AI_MAX_CONCURRENCY, minimum=1)
AI_RATE_LIMIT_RPM = env_int("AI_RATE_LIMIT_RPM", 0, minimum=0)  # 0: no limit
AI_RATE_LIMIT_TPM = env_int("AI_RATE_LIMIT_TPM", 0, minimum=0)  # 0: no limit
AI_TIMEOUT_S = env_float("AI_TIMEOUT_S", 60.0, minimum=0.1)
# The most bytes one attempt of a live call reads (its headers and body): an answer of the
# most tokens a step may ask for is a few megabytes of JSON.
AI_MAX_ANSWER_BYTES = env_int("AI_MAX_ANSWER_BYTES", 16 * 1024 * 1024, minimum=64 * 1024)
# The deadline of one round trip of a provider batch call (submitting, with the upload; a
# status; the results' download; a cancel): a server answering slowly holds no poll for ever.
AI_BATCH_CALL_TIMEOUT_S = env_float("AI_BATCH_CALL_TIMEOUT_S", 600.0, minimum=1.0)
AI_MAX_ATTEMPTS = env_int("AI_MAX_ATTEMPTS", 4, minimum=1)
AI_BACKOFF_S = env_float("AI_BACKOFF_S", 1.0, minimum=0.0)
AI_MAX_RETRY_WAIT_S = env_float("AI_MAX_RETRY_WAIT_S", 60.0, minimum=0.0)
# Prices of models the bundled table (genai-prices) does not know, or overrides of it: JSON
# {"model": {"input": usd, "cachedInput": usd, "output": usd}} per million tokens.
AI_PRICES = env_prices("AI_PRICES")
# Batch mode (`ai_generate` `mode: batch`): the local stand-in answers its batches this long
# after they are submitted. (How often they are polled is the `ai_batch` kind of wait's own
# setting, AI_BATCH_POLL_S: jobs/waits/ai_batch/conf.py.)
AI_LOCAL_BATCH_DELAY_S = env_float("AI_LOCAL_BATCH_DELAY_S", 3.0, minimum=0.0)

# Entities a worker takes through the steps together (one task, batched reads and writes).
# A run of more than 100 such chunks gets fewer, bigger ones, up to RUN_CHUNK_SIZE_MAX
# (workflows/steps/chunking.py); the size is fixed on the run when it starts.
RUN_CHUNK_SIZE = env_int("RUN_CHUNK_SIZE", 400, minimum=1)
RUN_CHUNK_SIZE_MAX = env_int("RUN_CHUNK_SIZE_MAX", 1000, minimum=1)
# The worker processes that take a run's chunks, all workers together (the Procfile starts
# its worker with as many): a run of slow calls is cut into a multiple of this many chunks.
WORKER_CONCURRENCY = env_int("WORKER_CONCURRENCY", 2, minimum=1)
# Ids one request may name (`entityIds`, a filter's `ids`): the request body's bound.
RUN_MAX_IDS = 10_000
# Entities one run may cover (a run over a filter); more is a 400 saying how many matched.
RUN_MAX_ENTITIES = env_int("RUN_MAX_ENTITIES", 1_000_000, minimum=1)
# Experiments (jobs/experiments): entities one may sample (the API's `sample` and `entityIds`
# are bounded by it), matches a filter may have to be sampled from, entities per chunk task
# (0: as a run of the versions would chunk them).
EXPERIMENT_MAX_ENTITIES = 10_000
EXPERIMENT_MAX_MATCHES = env_int("EXPERIMENT_MAX_MATCHES", 1_000_000, minimum=1)
EXPERIMENT_CHUNK_SIZE = env_int("EXPERIMENT_CHUNK_SIZE", 0)
# A filtered run's items are made in the background, this many per transaction.
RUN_ITEMS_BATCH_SIZE = env_int("RUN_ITEMS_BATCH_SIZE", 10_000, minimum=1)

# Triggers: entity events are gathered this long before they start runs, and a chain of
# runs started by the changes of other triggered runs is cut at this depth.
TRIGGER_DEBOUNCE_S = env_float("TRIGGER_DEBOUNCE_S", 5.0, minimum=0.0)
TRIGGER_MAX_DEPTH = env_int("TRIGGER_MAX_DEPTH", 3, minimum=1)

# Outbound HTTP (webhooks, run callbacks). Private, loopback, link-local and metadata
# addresses are refused unless a host, address or network (each optionally with a port) is
# listed here.
OUTBOUND_ALLOWED_HOSTS = env_list("OUTBOUND_ALLOWED_HOSTS", [])
for _entry in OUTBOUND_ALLOWED_HOSTS:
    try:
        parse_allowed_host(_entry)
    except ValueError as _problem:
        raise ImproperlyConfigured(f"OUTBOUND_ALLOWED_HOSTS: {_problem}.") from _problem
# The whole of one attempt (connect, send, answer), however slowly the answer arrives.
OUTBOUND_TIMEOUT_S = env_float("OUTBOUND_TIMEOUT_S", 10.0, minimum=0.1)
OUTBOUND_MAX_ATTEMPTS = env_int("OUTBOUND_MAX_ATTEMPTS", 3, minimum=1)
OUTBOUND_BACKOFF_S = env_float("OUTBOUND_BACKOFF_S", 0.5, minimum=0.0)

# A run with no sign of progress for this long (no chunk claimed or finished, no step still
# working on one) gets its unfinished chunks queued again by celery beat.
RUN_STALL_AFTER_S = env_int("RUN_STALL_AFTER_S", 600, minimum=1)
# Deliveries of a chunk an item may take. Each one that claims it counts, whether it ends
# or dies (a worker killed, a database outage mid-chunk): past this many the item fails,
# saying why, instead of its chunk being queued again forever.
RUN_MAX_ATTEMPTS = env_int("RUN_MAX_ATTEMPTS", 10, minimum=1)
# A cancel ends a run's unclaimed and waiting items in the background, this many per
# transaction (jobs/cancel.py); the request that asks for it does one such batch at most.
RUN_CANCEL_BATCH_SIZE = env_int("RUN_CANCEL_BATCH_SIZE", 1000, minimum=1)
# Items still `running` this long after a cancel's last sign of progress are taken from the
# delivery holding them (its worker died): their chunks are queued again and end them.
RUN_CANCEL_TAKEOVER_S = env_int("RUN_CANCEL_TAKEOVER_S", 30, minimum=1)

# Entity revisions older than this are pruned (the newest of each entity is always kept);
# a version whose revisions were pruned can no longer be restored.
ENTITY_REVISIONS_KEEP_DAYS = env_int("ENTITY_REVISIONS_KEEP_DAYS", 90, minimum=1)

# How long after the first decision on a run's waits (a review approved) its resolved
# entities are queued again: decisions arriving within it resume together, in a few chunks.
WAIT_RESUME_DELAY_S = env_float("WAIT_RESUME_DELAY_S", 1.0, minimum=0.0)
# A resume task not run this long past its time is taken over by beat's tick of the waits
# (its worker died holding it: jobs.engine.waits.waits_resume_overdue).
WAIT_RESUME_LEASE_S = env_float("WAIT_RESUME_LEASE_S", 2.0, minimum=0.1)
# How often celery beat ticks every kind of wait (each decides what is due: a delay's time, a
# review's expiry, an event wait's timeout, a provider batch's poll). A kind's own settings
# are in its folder (jobs/waits/<kind>/conf.py: EVENT_KEEP_MINUTES, AI_BATCH_POLL_S).
# A delay goes on within this (and its resume) of its time even when the tick queued for
# that time was lost with a killed worker; each kind's tick is a few indexed queries.
WAITS_TICK_S = env_float("WAITS_TICK_S", 1.0, minimum=0.1)
# Each of beat's ticks is a message on the waits queue, and any tick does what the ones queued
# before it would: one not taken this long after beat sent it (the waits worker was down) is
# dropped by the worker that finds it, so a worker back after an hour runs the last minute's
# ticks, not the hour's 3,600. Well above a busy queue's wait and the machines' clock skew
# (beat stamps the expiry, the worker checks it), so ticks are never all dropped.
WAITS_TICK_EXPIRES_S = env_int("WAITS_TICK_EXPIRES_S", 60, minimum=1)

# Retention (jobs/retention.py, pruned by celery beat): ended runs older than this, with
# everything of theirs (items, logs, waits, reviews, batches, schedule fires, jobs).
RUNS_KEEP_DAYS = env_int("RUNS_KEEP_DAYS", 90, minimum=1)
# Idempotency records replay their answer this long, then are deleted.
IDEMPOTENCY_KEEP_HOURS = env_int("IDEMPOTENCY_KEEP_HOURS", 24, minimum=1)
# Rows one retention batch deletes (one transaction); a task queues the next while any is left.
RETENTION_BATCH_ROWS = env_int("RETENTION_BATCH_ROWS", 5000, minimum=1)
