"""Writes to workflow definitions. Every change of the steps makes a new immutable version,
live at once or a draft until published."""

import re

from django.conf import settings
from django.db import transaction

from config.api.errors import Conflict, FieldError, InvalidInput, NotFound
from entities.json_values import as_jsonb, json_equal
from entities.models import EntityType
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.steps import registry
from workflows.templating import steps_read
from workflows.triggers import triggers_clean

STEP_ID_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")  # fullmatch: `$` allows a "\n"
STEP_KEYS = {"id", "type", "config"}


def _step_problems(step, index: int, seen_ids: set[str]) -> list[FieldError]:
    where = f"steps[{index}]"
    if not isinstance(step, dict):
        return [FieldError(where, "Must be an object with `type` and `config`.")]
    found = [
        FieldError(f"{where}.{key}", "Unknown field.", "unknown_field")
        for key in step
        if key not in STEP_KEYS
    ]
    step_id = step.get("id")
    if step_id is not None:
        if not isinstance(step_id, str) or not STEP_ID_PATTERN.fullmatch(step_id):
            found.append(
                FieldError(
                    f"{where}.id", "Use a letter, then up to 63 letters, digits, `_` or `-`."
                )
            )
        elif step_id in seen_ids:
            found.append(
                FieldError(f"{where}.id", f"Another step has the id {step_id!r}.", "unique")
            )
        else:
            seen_ids.add(step_id)
    step_type = step.get("type")
    if step_type is None:
        return [*found, FieldError(f"{where}.type", "This field is required.", "required")]
    if not isinstance(step_type, str):
        return [
            *found,
            FieldError(
                f"{where}.type",
                f"Must be a string, one of: {', '.join(registry.names())}.",
                "type",
            ),
        ]
    if step_type not in registry:
        return [
            *found,
            FieldError(
                f"{where}.type",
                f"Unknown step type {step_type!r}. Use one of: {', '.join(registry.names())}.",
                "unknown_step_type",
            ),
        ]
    if "config" not in step:
        return [*found, FieldError(f"{where}.config", "This field is required.", "required")]
    return found + registry.get(step_type).problems(step["config"], path=f"{where}.config")


def steps_clean(steps, current: list[dict] | None = None) -> list[dict]:
    """Validated steps as `[{id, type, config}]`, with ids given to steps that have none.
    A step that leaves out a write-only value (a secret) keeps the one the step of the same
    id and type has in `current` (the steps now).

    Raises InvalidInput naming every problem by its path (`steps[2].config.prompt`).
    """
    now = {(step["id"], step["type"]): step["config"] for step in current or []}
    limit = settings.WORKFLOW_MAX_STEPS
    if not isinstance(steps, list):
        raise InvalidInput(
            "steps: Must be a list of steps.",
            details=[FieldError("steps", "Must be a list of steps.")],
        )
    if not 1 <= len(steps) <= limit:
        message = f"Give 1 to {limit} steps, not {len(steps)}."
        raise InvalidInput(f"steps: {message}", details=[FieldError("steps", message)])
    seen_ids: set[str] = set()
    problems = [
        p for index, step in enumerate(steps) for p in _step_problems(step, index, seen_ids)
    ]
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidInput(f"{first.field}: {first.message}{more}", details=problems)
    counts: dict[str, int] = {}
    cleaned = []
    for step in steps:
        step_id = step.get("id")
        while step_id is None or (step_id in seen_ids and step_id != step.get("id")):
            counts[step["type"]] = counts.get(step["type"], 0) + 1
            step_id = f"{step['type']}_{counts[step['type']]}"
        seen_ids.add(step_id)
        config = registry.get(step["type"]).stored_config(
            step["config"], now.get((step.get("id"), step["type"]))
        )
        cleaned.append({"id": step_id, "type": step["type"], "config": config})
    problems = _step_reference_problems(cleaned)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidInput(f"{first.field}: {first.message}{more}", details=problems)
    return cleaned


def _step_reference_problems(steps: list[dict]) -> list[FieldError]:
    """A template may read the outputs of the steps before its own (`steps.<id>`): naming
    itself, a later step or no step would fail every entity at run time."""
    positions = {step["id"]: index for index, step in enumerate(steps)}
    problems = []
    for index, step in enumerate(steps):
        where = f"steps[{index}].config"
        for path, source in registry.get(step["type"]).templates(step["config"], path=where):
            for name in sorted(steps_read(source)):
                position = positions.get(name)
                if position is None:
                    reason = f"no step has the id {name!r}"
                elif position == index:
                    reason = "that is this step, whose output is not made yet"
                elif position > index:
                    reason = f"that step comes after this one (steps[{position}])"
                else:
                    continue
                problems.append(
                    FieldError(
                        path,
                        f"The template reads `steps.{name}`, but {reason}: a template reads "
                        "the outputs of the steps before its own.",
                        "unknown_step",
                    )
                )
    return problems


def _steps_replace(workflow: Workflow, steps: list[dict]) -> None:
    """The Step rows: the live version's steps, as the admin and the API show them."""
    workflow.steps.all().delete()
    Step.objects.bulk_create(
        Step(
            workflow=workflow,
            position=position,
            step_id=step["id"],
            type=step["type"],
            config=step["config"],
        )
        for position, step in enumerate(steps)
    )


@transaction.atomic
def workflow_create(
    *,
    name: str,
    entity_type: EntityType,
    steps,
    description: str = "",
    status: str = Workflow.Status.ACTIVE,
    created_by=None,
    triggers=None,
) -> Workflow:
    cleaned = steps_clean(steps)
    workflow = Workflow.objects.create(
        name=name,
        description=description,
        entity_type=entity_type,
        status=status,
        created_by=created_by,
        triggers=triggers_clean(triggers, entity_type),
    )
    _steps_replace(workflow, cleaned)
    WorkflowVersion.objects.create(
        workflow=workflow, number=workflow.version, steps=cleaned, created_by=created_by
    )
    return workflow


@transaction.atomic
def workflow_update(
    *,
    workflow_id: str,
    steps=None,
    draft: bool = False,
    note: str = "",
    updated_by=None,
    **changes,
) -> Workflow:
    """Change name, description, status or triggers; a new `steps` list makes a new version
    (numbered after the newest) that goes live at once, or with `draft` waits to be published
    (`version_publish`). Steps equal to the version they would replace (the live one, or for a
    draft the newest) make none. The row is locked so two edits cannot both become version N+1.
    """
    if (draft or note) and steps is None:
        field = "draft" if draft else "note"
        message = f"`{field}` goes with `steps`: it describes a new version of them."
        raise InvalidInput(f"{field}: {message}", details=[FieldError(field, message)])
    workflow = Workflow.objects.select_for_update().get(pk=workflow_id)
    if "triggers" in changes:
        changes["triggers"] = triggers_clean(changes["triggers"], workflow.entity_type)
    base = workflow.versions.filter(
        number=workflow.latest_version if draft else workflow.version
    ).first()
    cleaned = steps_clean(steps, base.steps if base else None) if steps is not None else None
    if base is not None and json_equal(as_jsonb(cleaned), as_jsonb(base.steps)):
        cleaned = None  # the same steps again (as JSON: `1` to `true` is an edit): no version
    for field, value in changes.items():
        setattr(workflow, field, value)
    if cleaned is not None:
        if base is not None:  # else the first version (the admin saves its steps after the row)
            workflow.latest_version += 1
        if not draft:
            workflow.version = workflow.latest_version
        WorkflowVersion.objects.create(
            workflow=workflow,
            number=workflow.latest_version,
            steps=cleaned,
            note=note,
            created_by=updated_by,
        )
        if not draft:
            _steps_replace(workflow, cleaned)
    workflow.save()
    return workflow


@transaction.atomic
def version_publish(*, workflow_id: str, number: int, expected_live: int | None = None) -> Workflow:
    """Make version `number` the live one: what runs, triggers and schedules execute from
    now on (runs already started keep theirs). Publishing an older version is a rollback;
    publishing the live one changes nothing. `expected_live`: only if that version is still
    the live one (the one the publisher compared with, or saw), else 409
    `live_version_moved`: someone published meanwhile, and this would replace a version the
    publisher never looked at."""
    workflow = Workflow.objects.select_for_update().get(pk=workflow_id)
    version = workflow.versions.filter(number=number).first()
    if version is None:
        raise NotFound(
            f"No version {number} of workflow {workflow_id!r}: it has versions 1 to "
            f"{workflow.latest_version}."
        )
    if expected_live is not None and workflow.version != expected_live:
        raise Conflict(
            f"The live version is {workflow.version}, not {expected_live}: it was published "
            f"since. Compare version {number} with it before publishing.",
            code="live_version_moved",
        )
    if workflow.version != number:
        workflow.version = number
        _steps_replace(workflow, version.steps)
        workflow.save(update_fields=["version", "updated_at"])
    return workflow


def workflow_archive(*, workflow_id: str) -> Workflow:
    return workflow_update(workflow_id=workflow_id, status=Workflow.Status.ARCHIVED)
