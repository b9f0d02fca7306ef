"""The `ai_batch` kind of wait (an `ai_generate` step in `mode: batch`): `kind` (create,
cancel, tick: submit, poll and cancel provider batches), `models`, `services`, `results`,
and `owners` (whose requests a batch answers: a run's waits, or an experiment's sides)."""
