"""Experiments: two versions of a workflow run side by side in shadow mode (nothing written or
sent) over a sample of entities, and scored (rules, a model as judge, people).

- `models`: an Experiment, one ExperimentResult per entity (both sides and every verdict).
- `shadow`: the engine both sides run with (`DryRun`, with the experiment's cancel and budget).
- `scorers`: rules and judge verdicts of one entity's two sides.
- `services`: start, execute a chunk, finish; `summary` for the API.
"""
