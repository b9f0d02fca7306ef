"""The step editor's check in the page: the steps and triggers a workflow form holds, checked
by the same services as the API and the form's save (`steps_clean`, `triggers_clean`), their
problems worded as the saved form words them, so the page refuses a bad value before it is
sent, with the message the server would give."""

import json
import re
from dataclasses import asdict, dataclass

from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, JsonResponse

from config.api.errors import InvalidInput
from entities.models import EntityType
from workflows import services
from workflows.editor import EditorInputError, editor_clean, triggers_editor_clean
from workflows.steps import registry
from workflows.triggers import triggers_clean

STEP_ERROR = re.compile(r"^steps\[(\d+)\](?:\.(\w+))?")
PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
# A problem's path under a step (`steps[1].config.x`) names the form field it is shown at.
FORM_FIELD = {"id": "step_id", "type": "type", "config": "config"}


@dataclass(frozen=True)
class Problem:
    """One problem as the form shows it: `text` at `field` of step `step` (None: the steps as
    a whole, or the triggers when `field` is "triggers"); `path`, the value's place in the
    step's config (`["operations", "0", "field"]`), where the page's form marks it."""

    step: int | None
    field: str | None
    text: str
    path: tuple[str, ...] = ()


def steps_check(steps: list[dict], current: list[dict]) -> tuple[list[dict], list[Problem]]:
    """The steps as they would be stored, or the problems `steps_clean` finds."""
    try:
        return services.steps_clean(steps, current), []
    except InvalidInput as exc:
        problems = []
        for detail in exc.details:
            match = STEP_ERROR.match(detail.field)
            if match is None:
                problems.append(Problem(None, None, detail.message))
            else:
                field = FORM_FIELD.get(match.group(2) or "")
                path = ()
                if field == "config":
                    rest = detail.field[match.end() :]
                    path = tuple(name or index for name, index in PATH_PART.findall(rest))
                problems.append(
                    Problem(int(match.group(1)), field, f"{detail.field}: {detail.message}", path)
                )
        return [], problems


def triggers_check(triggers, entity_type: EntityType) -> tuple[list[dict], list[Problem]]:
    try:
        return triggers_clean(triggers_editor_clean(triggers), entity_type), []
    except InvalidInput as exc:
        return [], [
            Problem(None, "triggers", f"{problem.field}: {problem.message}")
            for problem in exc.details
        ]


def posted_step(step) -> tuple[dict, list[Problem]]:
    """A step as the form posts it (`config` empty: the type's example), as the API takes it."""
    if not isinstance(step, dict):
        return {"type": None, "config": None}, []
    kept = {"type": step.get("type"), "config": step.get("config")}
    if step.get("id"):
        kept["id"] = step["id"]
    if kept["type"] in registry:
        step_type = registry.get(kept["type"])
        if kept["config"] in (None, ""):
            kept["config"] = step_type.example
        else:
            try:
                kept["config"] = editor_clean(step_type.config_schema, kept["config"])
            except EditorInputError as exc:
                return kept, [Problem(None, "config", str(exc))]
    return kept, []


def editor_check_view(model_admin, request):
    """POST `{workflow?, entityType?, steps: [{id?, type, config}], triggers?}` -> `{problems:
    [{step, field, text}]}`, empty when the form would save."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    not_json = JsonResponse({"problems": [asdict(Problem(None, None, "Not JSON."))]}, status=400)
    # A form's body is not JSON, and was read as its fields already (the admin's middleware
    # reads every POST's): its body can no longer be read.
    if request.content_type != "application/json":
        return not_json
    try:
        body = json.loads(request.body)
    except ValueError:
        return not_json
    if not isinstance(body, dict):
        body = {}
    workflow = model_admin.get_object(request, str(body.get("workflow") or ""))
    allowed = (
        model_admin.has_change_permission(request, workflow)
        if workflow is not None
        else model_admin.has_add_permission(request)
    )
    if not allowed:
        raise PermissionDenied
    problems, steps = [], body.get("steps")
    if isinstance(steps, list):  # anything else is refused by steps_clean, with its message
        steps = []
        for index, step in enumerate(body["steps"]):
            kept, found = posted_step(step)
            steps.append(kept)
            problems += [Problem(index, p.field, p.text, p.path) for p in found]
    if not problems:
        current = [step.as_dict() for step in workflow.steps.all()] if workflow else []
        problems += steps_check(steps, current)[1]
    entity_type = (
        workflow.entity_type
        if workflow is not None
        else EntityType.objects.filter(pk=str(body.get("entityType") or "")).first()
    )
    if entity_type is not None and "triggers" in body:
        problems += triggers_check(body["triggers"], entity_type)[1]
    return JsonResponse({"problems": [asdict(problem) for problem in problems]})
