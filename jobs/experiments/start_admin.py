"""Starting an experiment from the admin ("Try a new version on a sample" on a workflow's
page): the two versions, the entities found by the run form's search (those ticked, or a
sample of the matches), the scorers in a form made from their schema, a budget. The form is
made into the body `POST /workflows/:id/experiments` takes and started by the same
`experiment_create`, so the admin refuses what the API refuses, with the API's messages."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django_jsonform.widgets import JSONFormWidget

from config.api.errors import DomainError, FieldError, InvalidInput
from config.time_limit import TooSlow
from entities.models import Entity
from jobs.entity_search import EntitySearch, entity_search
from jobs.experiments.serializers import ScorerSerializer
from jobs.experiments.start import experiment_create
from workflows.editor import editor_clean, editor_schema, groups_editor_clean, plain_text
from workflows.models import Workflow
from workflows.steps.validate import Validate

# What starting an experiment asks of a user, as the API's create does.
PERMISSIONS = ["workflows.view_workflow", "jobs.add_experiment", "entities.view_entity"]
SAMPLE = 20  # the sample size the form suggests
TICKED, MATCHES = "ticked", "matches"
FIELDSETS = [
    ("2. How many of them", {"fields": ["entities", "sample"]}),
    ("3. The versions", {"fields": [("baseline", "candidate")]}),
    ("4. How the sides are judged", {"fields": ["scorers"]}),
    ("5. A budget (optional)", {"fields": [("max_cost_usd", "max_tokens")]}),
]


def scorers_editor_schema() -> dict:
    """The scorers as a list of groups, one per scorer: its type, its name, and each type's
    options (shown for all, named by the type that uses them; the API refuses an option of
    another type). A rules scorer's rules are edited as the validate step's are."""
    helps = {name: plain_text(f.help_text or "") for name, f in ScorerSerializer().fields.items()}
    rules = editor_schema(Validate.config_schema)["properties"]["rules"]
    return {
        "type": "array",
        "maxItems": 20,
        "items": {
            "type": "object",
            "title": "Scorer",
            "properties": {
                "type": {
                    "type": "string",
                    "enum": ["rules", "judge", "human"],
                    "required": True,
                    "help_text": "rules: the rules pass or fail on each side; judge: a model "
                    "says which side is better (pairwise) or scores each from 1 to 5 (score); "
                    "human: people pick the better side in a blind queue.",
                },
                "name": {"type": "string", "required": True, "help_text": helps["name"]},
                "rules": {**rules, "help_text": helps["rules"]},
                "mode": {
                    "type": "string",
                    "enum": ["", "pairwise", "score"],
                    "help_text": "judge: pairwise or score.",
                },
                "instructions": {
                    "type": "string",
                    "widget": "textarea",
                    "help_text": helps["instructions"],
                },
                "provider": {
                    "type": "string",
                    "enum": ["", *settings.AI_PROVIDERS],
                    "help_text": "judge: the judge's provider (default: AI_PROVIDER).",
                },
                "model": {
                    "type": "string",
                    "help_text": "judge: the judge's model (default the provider's).",
                },
                "fields": {
                    "type": "array",
                    "items": {"type": "string"},
                    "help_text": helps["fields"],
                },
            },
        },
    }


def scorers_editor_clean(scorers):
    """What the scorers' form posts, as the API takes it: options left empty dropped (the
    form posts every type's), each rule's empty options too."""
    cleaned = groups_editor_clean(scorers)
    for scorer in cleaned if isinstance(cleaned, list) else []:
        rules = scorer.get("rules") if isinstance(scorer, dict) else None
        if isinstance(rules, list):
            scorer["rules"] = editor_clean(Validate.config_schema, {"rules": rules})["rules"]
    return cleaned


class ExperimentStartForm(forms.Form):
    """The experiment's options as typed: numbers are checked by the API's serializer, not
    here, so a bad one is refused with the API's message."""

    baseline = forms.CharField(widget=forms.Select, help_text="The version compared against.")
    candidate = forms.CharField(widget=forms.Select, help_text="The version tried.")
    entities = forms.ChoiceField(
        widget=forms.RadioSelect,
        initial=MATCHES,
        choices=[
            (MATCHES, "A random sample of the matches of the search"),
            (TICKED, "The entities I tick below"),
        ],
    )
    sample = forms.CharField(
        required=False,
        initial=SAMPLE,
        widget=forms.NumberInput,
        help_text="How many of the matches (a seeded random sample); blank: all of them.",
    )
    scorers = forms.JSONField(
        required=False,
        initial=list,
        widget=JSONFormWidget(schema=scorers_editor_schema),
        help_text="How each entity's two sides are judged.",
    )
    max_cost_usd = forms.CharField(
        required=False,
        label="Budget: cost (USD)",
        widget=forms.NumberInput(attrs={"step": "any"}),
        help_text="Once both sides' and the judges' model calls cost this much, no new call "
        "starts.",
    )
    max_tokens = forms.CharField(
        required=False,
        label="Budget: tokens",
        widget=forms.NumberInput,
        help_text="Once they used this many tokens, no new call starts.",
    )

    # Where each of the API's fields is shown in this form.
    API_FIELDS = {
        "baseline": "baseline",
        "candidate": "candidate",
        "entityIds": "entities",
        "filter": "entities",
        "sample": "sample",
        "scorers": "scorers",
        "budget": "max_cost_usd",
        "budget.maxCostUsd": "max_cost_usd",
        "budget.maxTokens": "max_tokens",
    }

    def __init__(self, *args, workflow: Workflow, **kwargs):
        super().__init__(*args, **kwargs)
        self.workflow = workflow
        numbers = list(workflow.versions.order_by("-number").values_list("number", flat=True))
        choices = [
            (number, f"version {number}" + (" (live)" if number == workflow.version else ""))
            for number in numbers
        ]
        for name in ("baseline", "candidate"):
            self.fields[name].widget.choices = choices
        self.fields["baseline"].initial = workflow.version
        # The newest version other than the live one: the draft to try, as a rule.
        self.fields["candidate"].initial = next(
            (number for number in numbers if number != workflow.version), workflow.version
        )

    def body(self, search: EntitySearch, ticked: list[str]) -> dict:
        """The API's body for what was typed and found."""
        data = self.cleaned_data
        body = {
            "baseline": _number(data["baseline"]),
            "candidate": _number(data["candidate"]),
            "scorers": scorers_editor_clean(data["scorers"] or []),
        }
        if data["entities"] == TICKED:
            body["entityIds"] = ticked
        else:
            entity_filter = {"status": search.status} if search.status else {}
            sample = _number(data["sample"]) if data["sample"].strip() else None
            if search.text:  # the API filters by status and ids: the search's matches by id
                entity_filter["ids"] = _matching_ids(search, sample, self.workflow)
            body["filter"] = entity_filter
            if sample is not None:
                body["sample"] = sample
        budget = {
            key: _number(data[name])
            for key, name in (("maxCostUsd", "max_cost_usd"), ("maxTokens", "max_tokens"))
            if data[name].strip()
        }
        if budget:
            body["budget"] = budget
        return body

    def add_api_errors(self, error: DomainError) -> None:
        """Each of the API's problems next to the field it is about (paths kept in the text:
        `scorers[0].instructions: This field is required.`)."""
        for problem in error.details or []:
            where = problem.field.split("[")[0]
            name = self.API_FIELDS.get(where) or self.API_FIELDS.get(where.split(".")[0])
            text = (
                problem.message if problem.field == where else f"{problem.field}: {problem.message}"
            )
            self.add_error(name, text)


def _matching_ids(search: EntitySearch, sample, workflow: Workflow) -> list[str]:
    """The search's matches by id, as many as a filter's `ids` may name and one more (for
    the API to refuse). A search matching more than that with a sample size the API takes
    gets its sample drawn here, at random in the database, so that a broad search ("a")
    still starts a sample of its matches instead of refusing the list of all of them; seeded
    as the API's sample is (the workflow, the size, the number of matches), so the same
    search and size draw the same entities."""
    limit = settings.RUN_MAX_IDS
    wanted = isinstance(sample, int) and 0 < sample <= limit
    if wanted and search.count > limit:
        return search.ids(limit, sample=sample, seed=f"{workflow.pk}:{sample}:{search.count}")
    return search.ids(limit + 1)


def _number(text):
    """A typed number as JSON's (an int or a float); anything else as it was typed, for the
    API to refuse with its message."""
    text = str(text).strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def experiment_start_view(model_admin, request, workflow_id: str):
    """GET: the form, with the entities of the search; POST: start the experiment and go to
    its page, or the form again with the API's messages."""
    workflow = get_object_or_404(Workflow, pk=unquote(workflow_id))
    if not request.user.has_perms(PERMISSIONS):
        raise PermissionDenied
    params = request.POST if request.method == "POST" else request.GET
    search = entity_search(params, workflow.entity_type_id, by_data=True)  # PERMISSIONS
    refused = None
    if request.method == "POST":
        form = ExperimentStartForm(request.POST, workflow=workflow)
        if form.is_valid():
            try:
                experiment = _start(form, workflow, search, request)
            except DomainError as exc:
                refused = exc.message
                form.add_api_errors(exc)
            else:
                model_admin.message_user(
                    request,
                    f"Started experiment {experiment.pk} on {experiment.total} entities.",
                    messages.SUCCESS,
                )
                return redirect("admin:jobs_experiment_change", quote(experiment.pk))
    else:
        form = ExperimentStartForm(workflow=workflow)
    return TemplateResponse(
        request,
        "admin/workflows/workflow/experiment.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": f"Try a version of {workflow.name} on a sample",
            "opts": model_admin.model._meta,
            "workflow": workflow,
            "form": form,
            "adminform": helpers.AdminForm(form, FIELDSETS, {}, model_admin=model_admin),
            "refused": refused,
            "search": search,
            "statuses": Entity.Status.choices,
            "show_data": True,
        },
    )


def _start(form: ExperimentStartForm, workflow: Workflow, search: EntitySearch, request):
    matches = form.cleaned_data["entities"] == MATCHES
    try:
        if matches and search.too_slow:
            raise TooSlow
        if matches and search.text and not search.count:
            message = "No entity matches the search."
            raise InvalidInput(message, details=[FieldError("filter", message, "empty")])
        body = form.body(search, request.POST.getlist("entity_ids"))
    except TooSlow:
        search.too_slow = True
        message = search.too_slow_message
        raise InvalidInput(message, details=[FieldError("filter", message, "too_slow")]) from None
    return experiment_create(workflow=workflow, body=body, created_by=request.user)
