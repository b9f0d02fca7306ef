"""Scorers: each turns one entity's two sides into a verdict, named after the scorer.

- rules: the `validate` step's rules on each side's working copy: pass or fail per side (a
  side that failed fails them).
- judge: a model asked, in `pairwise` mode, which side better follows the instructions, the
  sides shown as A and B in an order seeded by the experiment and the entity (so position
  bias cancels out over a sample) and mapped back; in `score` mode a 1-5 score per side.
  Its answers are held to a JSON schema; its calls count in the experiment's budget.
- human: a blind comparison left for a person (`winner` null until decided).
"""

import hashlib
import json
from dataclasses import dataclass, field

from jobs.costs import model_of
from workflows.providers import GenerationRequest, provider_get
from workflows.steps.ai_generate import CallsFailed, answer_generate, priced
from workflows.steps.runtime import StepError, get_path
from workflows.steps.validate import rule_problems
from workflows.templating import TemplateError, render

PAIRWISE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["winner", "reason"],
    "properties": {"winner": {"enum": ["A", "B", "tie"]}, "reason": {"type": "string"}},
}
SCORE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["score", "reason"],
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "reason": {"type": "string"},
    },
}


def candidate_is_a(experiment_id: str, entity_id: str) -> bool:
    """Whether the candidate is shown as side A to a judge or a person: seeded, so the same
    entity of the same experiment always shows the same order."""
    return hashlib.sha256(f"{experiment_id}:{entity_id}".encode()).digest()[0] % 2 == 1


@dataclass
class Judged:
    """An entity's verdicts, and what each of its judges' calls used (priced, stored shape)."""

    verdicts: list[dict]
    usages: list[dict] = field(default_factory=list)


def verdicts_of(
    *,
    scorers: list[dict],
    experiment_id: str,
    entity: dict,
    sides: dict,
    refused: str | None = None,
) -> Judged:
    """Every scorer's verdict on one entity; `sides` is {"baseline": side, "candidate": side}
    as `sides.side_of` records them (with the working copy under `data`). Its judges' calls
    are made here and nothing else is touched (entities are judged on threads, their calls
    counted by the caller: `sides.results_of`); `refused` (the budget's message) fails each
    judge's verdict without a call."""
    judged = Judged([])
    verdicts = judged.verdicts
    for scorer in scorers:
        kind = scorer["type"]
        if kind == "rules":
            verdicts.append(_rules(scorer, sides))
        elif kind == "judge":
            verdicts.append(_judge(scorer, experiment_id, entity, sides, refused, judged.usages))
        else:  # human
            verdicts.append(
                {
                    "name": scorer["name"],
                    "type": "human",
                    "winner": None,
                    "reason": "",
                    "candidateIsA": candidate_is_a(experiment_id, entity["id"]),
                }
            )
    return judged


def _rules(scorer: dict, sides: dict) -> dict:
    verdict = {"name": scorer["name"], "type": "rules"}
    for arm, side in sides.items():
        if side["outcome"] == "failed":
            problems = [f"the side failed: {side['error']}"]
        else:
            problems = [p for rule in scorer["rules"] for p in rule_problems(rule, side["data"])]
        verdict[arm] = {"passed": not problems, "reason": "; ".join(problems)}
    return verdict


def _shown(scorer: dict, side: dict, entity: dict) -> str:
    """What the judge reads of a side: its outcome, and its `fields` (default: those either
    side changed; dotted paths read nested values) as it left them; `status` (the entity's,
    which a side's data does not hold, unless a field of its own is named so) as the side
    left it."""
    if side["outcome"] == "failed":
        return json.dumps({"failed": side["error"]}, ensure_ascii=False)
    left = {"status": entity["status"]}
    left.update((c["field"], c["after"]) for c in side["changes"] if c["field"] == "status")
    left.update(side["data"])
    names = scorer.get("fields") or scorer["_changed"]
    return json.dumps(
        # A name is a key (the changes' are) or a dotted path (`seo.title`), as a rule reads.
        {name: left[name] if name in left else get_path(left, name) for name in names},
        ensure_ascii=False,
        sort_keys=True,
    )


def _judge(scorer, experiment_id, entity, sides, refused, usages) -> dict:
    verdict = {"name": scorer["name"], "type": "judge", "mode": scorer["mode"]}
    scorer = {
        **scorer,
        "_changed": sorted(
            {change["field"] for side in sides.values() for change in side["changes"]}
        ),
    }
    try:
        instructions = render(scorer["instructions"], {"entity": entity})
        if scorer["mode"] == "pairwise":
            a_is_candidate = candidate_is_a(experiment_id, entity["id"])
            a, b = ("candidate", "baseline") if a_is_candidate else ("baseline", "candidate")
            shown_a, shown_b = (_shown(scorer, sides[arm], entity) for arm in (a, b))
            answer = _ask(
                scorer,
                refused,
                usages,
                f"{instructions}\n\nWhich answer better follows the instructions above? Reply "
                'as JSON {"winner": "A" | "B" | "tie", "reason": "..."}.\n\n'
                f"<A>\n{shown_a}\n</A>\n\n<B>\n{shown_b}\n</B>",
                PAIRWISE_SCHEMA,
            )
            winner = {"A": a, "B": b}.get(answer["winner"], "tie")
            verdict.update(winner=winner, reason=answer["reason"], candidateIsA=a_is_candidate)
        else:
            for arm, side in sides.items():
                answer = _ask(
                    scorer,
                    refused,
                    usages,
                    f"{instructions}\n\nScore this answer from 1 (worst) to 5 (best) for how "
                    'well it follows the instructions above. Reply as JSON {"score": 1-5, '
                    f'"reason": "..."}}.\n\n<answer>\n{_shown(scorer, side, entity)}\n</answer>',
                    SCORE_SCHEMA,
                )
                verdict[arm] = {"score": answer["score"], "reason": answer["reason"]}
    except (StepError, TemplateError) as exc:
        verdict["error"] = str(exc)
    return verdict


def _ask(scorer: dict, refused: str | None, usages: list, prompt: str, schema: dict) -> dict:
    if refused is not None:
        raise StepError(refused)
    provider_name, model = model_of(scorer)  # as its price was checked at create
    provider = provider_get(provider_name)
    request = GenerationRequest(
        prompt=prompt,
        model=model,
        json_mode=True,
        json_schema=schema,
    )
    try:
        answer, usage = answer_generate(provider, request, on_retry=lambda message: None)
    except CallsFailed as exc:  # answered, invalid: paid for all the same
        usages.append(priced(exc.usage, provider, request.model))
        raise
    usages.append(priced(usage, provider, request.model))
    return answer
