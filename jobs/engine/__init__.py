"""The run engine: how a chunk of a run's entities goes through a workflow version's steps.
One module per part of the lifecycle, in the order a delivery meets them:

- `chunk`: one delivery of one chunk, start to end (`chunk_execute`, called by the task).
- `leases`: claiming the chunk's items (the lease: `attempts`), the run's heartbeat.
- `states`: the working copies the steps see, loaded from entities or checkpoints.
- `steps`: the step loop, and the guard around each step (where a step type plugs in).
- `committer`: the ports a step may use (`StepEngine`): publish, checkpoint before a side
  effect, cancelled?, heartbeat; each write conditional on the lease.
- `outcomes`: finishing: final item statuses, last commits, logs, the run's counters;
  giving up on items whose every delivery died.
- `parking`: parking the entities a step asked to wait, when the chunk finishes, applying
  their wait's resolution when a later delivery resumes them, queueing resolved entities
  again in chunks, cancelling a run's waits.
- `waits`: the side of waiting the kinds of wait (`jobs.waits`) call: resolving their waits,
  resuming runs, ticking every kind (and taking over a resume whose worker died).
- `recovery`: stalled runs, their unfinished chunks queued again.
- `dry_run`: the test endpoint, through the same step loop with the `DryRun` engine.

A run's status moves in `jobs.lifecycle` only; starting runs is `jobs.services`, cancelling
them `jobs.cancel`, retrying them `jobs.retries`; putting work on the broker is `jobs.queue`.
"""
