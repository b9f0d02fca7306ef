"""Durable waits: entities parked at a step, holding no worker, until something outside the
run resolves them. `base` defines a kind of wait (and its parts of a run's detail and admin
page) and the registry; each kind is one folder (`review/`, `ai_batch/`, `delay/`,
`event/`), registered in `kinds`; `settings` is how a kind reads its own settings
(`<kind>/conf.py`); `urls` gathers every kind's API. The engine's side is `jobs.engine.waits`
(resolve, tick: what kinds call) and `jobs.engine.parking` (park, apply, requeue, cancel)."""
