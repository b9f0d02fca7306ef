"""/metrics as scrapers and outside tools read it: every Accept header Prometheus sends is
answered in the format prometheus-client chooses, the output passes `promtool check metrics`
and both parsers, its label values come from a bounded set whatever model names users type,
and only keys with `jobs.view_metrics` (or an allowed network) read it."""

import importlib
import shutil
import subprocess

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families

from tests.conftest import Api
from tests.factories import make_entities, make_key, make_workflow
from workflows.providers.usage import model_label

pytestmark = pytest.mark.django_db

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"  # and `; escaping=`


def _test_run(api, product_type, model: str | None) -> None:
    """`/test` of an `ai_generate` step on the local provider (no `model`: its default)."""
    config = {"prompt": "Describe {{ entity.title }}", "outputField": "d", "provider": "local"}
    if model is not None:
        config["model"] = model
    workflow = make_workflow(product_type, [{"id": "g", "type": "ai_generate", "config": config}])
    [entity_id] = make_entities(product_type, 1)
    response = api.post(f"/api/v1/workflows/{workflow.pk}/test", {"entityId": entity_id})
    assert response.status_code == 200 and response.json()["status"] == "completed"


def _samples(body: str, parse=text_families) -> list:
    return [sample for family in parse(body) for sample in family.samples]


@pytest.fixture
def metrics_key(db) -> Api:
    return Api(make_key(read_only=True))


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (None, TEXT),
        ("text/plain", TEXT),
        ("text/plain;version=0.0.4", TEXT),
        ("text/plain;version=0.0.4;q=0.9,*/*;q=0.1", TEXT),
        ("application/openmetrics-text; version=1.0.0", OPENMETRICS),
        (
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
            "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            OPENMETRICS,
        ),
        ("*/*", TEXT),
        ("application/json", TEXT),
    ],
)
def test_every_accept_header_gets_the_format_prometheus_client_chooses(
    metrics_key, product_type, accept, content_type
):
    _test_run(Api(make_key()), product_type, "gpt-4o-mini")
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = metrics_key.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith(content_type)
    body = response.content.decode()
    parse = openmetrics_families if content_type == OPENMETRICS else text_families
    names = {sample.name for sample in _samples(body, parse)}
    assert {"workflows_model_calls_total", "workflows_runs"} <= names
    if content_type == OPENMETRICS:
        assert body.endswith("# EOF\n")


@pytest.mark.parametrize("accept", [None, "text/plain;version=0.0.4"])
def test_promtool_finds_no_problem_in_the_metrics(metrics_key, product_type, accept):
    """`promtool check metrics` reads the text format (OpenMetrics is checked by its parser
    above)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("no promtool (Debian's `prometheus` package; .ci/run installs it)")
    _test_run(Api(make_key()), product_type, None)
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    body = metrics_key.get("/metrics", **headers).content
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_typed_model_names_leave_the_metrics_bounded(product_type, metrics_key):
    """200 model names nobody configured or priced count as one `other`, not 200 series
    each; priced and configured models keep their names, and no series has an empty one."""
    api = Api(make_key())
    _test_run(api, product_type, "warm-up")
    before = _samples(metrics_key.get("/metrics").content.decode())
    typed = [f"model-{i}" for i in range(200)]
    for model in typed:
        _test_run(api, product_type, model)
    _test_run(api, product_type, "gpt-4o-mini-2024-07-18")  # priced, but not for `local`
    _test_run(api, product_type, None)
    after = _samples(metrics_key.get("/metrics").content.decode())
    models = {sample.labels["model"] for sample in after if "model" in sample.labels}
    assert not models & set(typed)
    assert {"other", "local"} <= models
    assert "" not in models
    assert len(after) - len(before) < 100  # `other`'s and `local`'s series, not 200 models'
    other = [
        s
        for s in after
        if s.name == "workflows_model_calls_total"
        and s.labels == {"provider": "local", "model": "other", "outcome": "ok"}
    ]
    assert other and other[0].value >= 200


@pytest.mark.parametrize(
    ("provider", "model", "label"),
    [
        ("local", "", "local"),
        ("local", "local", "local"),
        ("openai", "", "gpt-5-mini"),
        ("openai", "gpt-5-mini", "gpt-5-mini"),
        ("anthropic", "claude-haiku-4-5", "claude-haiku-4-5"),
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("anthropic", "claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("openai", "house-model", "house-model"),  # in AI_PRICES
        ("openai", "my-fine-tune-123", "other"),
        ("anthropic", "gpt-4o-mini", "other"),  # priced, but not by this provider
        ("local", "gpt-4o-mini", "other"),
        ("openai", "x" * 10_000, "other"),
    ],
)
def test_the_model_label_is_a_configured_or_priced_model_or_other(settings, provider, model, label):
    settings.AI_PRICES = {"house-model": {"input": 1.0, "cachedInput": 1.0, "output": 2.0}}
    assert model_label(provider, model) == label


def test_the_configured_model_keeps_its_name(settings):
    settings.AI_MODEL = "our-deployment"
    assert model_label("openai", "our-deployment") == "our-deployment"
    assert model_label("openai", "") == "our-deployment"


def _key_with(perms: list[str]) -> Api:
    user = get_user_model().objects.create(username=f"u-{len(perms)}-{'-'.join(perms)}")
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return Api(make_key(user.username))


@pytest.mark.parametrize(
    ("perms", "status"),
    [
        ([], 403),
        (["jobs.view_run", "entities.view_entity", "workflows.view_workflow"], 403),
        (["jobs.view_metrics"], 200),
    ],
)
def test_metrics_need_the_view_metrics_permission(settings, perms, status):
    settings.METRICS_ALLOWED_NETWORKS = []
    response = _key_with(perms).get("/metrics")
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["code"] == "permission_denied"
        assert response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("accept", ["text/plain", "application/openmetrics-text; version=1.0.0"])
def test_a_refusal_is_json_whatever_the_scraper_accepts(settings, accept):
    settings.METRICS_ALLOWED_NETWORKS = []
    response = _key_with([]).get("/metrics", HTTP_ACCEPT=accept)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert Api().get("/metrics", HTTP_ACCEPT=accept).status_code == 401


@pytest.mark.parametrize("read_only", [True, False])
def test_keys_made_for_the_api_read_metrics(settings, read_only):
    settings.METRICS_ALLOWED_NETWORKS = []
    assert Api(make_key(read_only=read_only)).get("/metrics").status_code == 200


def test_a_superuser_key_reads_metrics(settings):
    settings.METRICS_ALLOWED_NETWORKS = []
    get_user_model().objects.create_superuser(username="root-metrics", password=None)
    assert Api(make_key("root-metrics")).get("/metrics").status_code == 200


def test_the_migration_lets_whoever_read_runs_go_on_reading_metrics(settings):
    """Keys made before the permission existed: a user or group that could read runs is
    given `view_metrics`, so a running scraper is not cut off by the upgrade."""
    from django.apps import apps
    from django.contrib.auth.models import Group

    settings.METRICS_ALLOWED_NETWORKS = []
    migration = importlib.import_module("jobs.migrations.0016_view_metrics_permission")
    reader = _key_with(["jobs.view_run"])
    other = _key_with(["entities.view_entity"])
    group = Group.objects.create(name="scrapers")
    group.permissions.add(Permission.objects.get(codename="view_run"))
    member = get_user_model().objects.create(username="in-group")
    member.groups.add(group)
    migration.grant_to_run_readers(apps, None)
    assert reader.get("/metrics").status_code == 200
    assert other.get("/metrics").status_code == 403
    assert Api(make_key("in-group")).get("/metrics").status_code == 200
