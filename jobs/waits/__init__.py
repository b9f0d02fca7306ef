"""Durable waits: entities parked at a step, holding no worker, until something outside the
run resolves them. `base` defines a kind of wait and the registry; each kind is one folder
(`review/`, `ai_batch/`), registered in `kinds` (imported when the app is ready); `urls`
gathers every kind's API. The engine's side (park, apply, resolve, resume, cancel, tick)
is `jobs.engine.waits`."""
