"""Experiments: two versions of a workflow run side by side in shadow mode (nothing written or
sent) over a sample of entities, and scored (rules, a model as judge, people).

- `models`: an Experiment, one ExperimentResult per entity (both sides and every verdict),
  and the ExperimentSides kept while a side waits for a provider batch.
- `shadow`: the engine both sides run with (`DryRun`, with the experiment's cancel and budget,
  parking a batch-mode step's sides).
- `sides`: one entity's sides as recorded, and its result row once both ended.
- `scorers`: rules and judge verdicts of one entity's two sides.
- `batches`: batch mode: sides parked for a provider batch the experiment owns (the
  `ai_batch` kind's), continued once answered; `batch_owner`: the batch's owner for
  `jobs.waits.ai_batch`; `selectors`: reading the sides (waiting, kept, to resume).
- `log`: the experiment's log lines (its batches, its budget, entities given up).
- `services`: start, execute a chunk, finish; `summary` for the API.
"""
