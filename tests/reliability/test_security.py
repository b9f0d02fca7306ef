"""Every endpoint authenticated and permission-checked; templates cannot escape the sandbox."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from config.api.services import api_key_create
from tests.conftest import Api
from workflows.templating import TemplateError, render

pytestmark = pytest.mark.django_db
PUBLIC = {"/api/v1/schema"}  # any key may read the schema: it holds no one's data


def _api_routes(patterns=None, prefix="") -> list[str]:
    """Every URL under /api/v1 in the URL conf, with sample values for its parameters."""
    routes = []
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            routes += _api_routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and route.startswith("api/v1/"):
            path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"x_\1", route)  # router regexes
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"x_\1", path)  # path() converters
            routes.append("/" + path.replace("^", "").replace("$", ""))
    return sorted(set(routes))


ROUTES = _api_routes()


def test_the_route_list_covers_the_api():
    assert len(ROUTES) >= 15
    assert "/api/v1/workflows/x_pk/run" in ROUTES
    assert "/api/v1/jobs/x_pk/cancel" in ROUTES


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_every_endpoint_refuses_anonymous_requests(path, method, anonymous):
    response = getattr(anonymous, method)(path)
    assert response.status_code in (401, 405), (method, path, response.status_code)
    assert response.json()["error"]["code"] in ("not_authenticated", "method_not_allowed")


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_every_endpoint_checks_model_permissions(path, method, django_user_model):
    user = django_user_model.objects.create(username="no-permissions")
    client = Api(api_key_create(user=user)[1])
    response = getattr(client, method)(path)
    if path in PUBLIC and method == "get":
        assert response.status_code == 200
    else:
        assert response.status_code in (403, 405), (method, path, response.status_code)


SANDBOX_ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ entity.__class__.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ config.items() }}",
    "{{ request.application.__globals__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "{{ entity.title.__class__.__mro__ }}",
    "{{ entity.update({'title': 'x'}) }}",
    "{{ steps.__setitem__('a', 1) }}",
    "{{ range(10**9)|list }}",
    "{{ 'x' * 10**9 }}",
]


@pytest.mark.parametrize("payload", SANDBOX_ESCAPES)
def test_known_sandbox_escapes_are_harmless(payload):
    context = {"entity": {"id": "ent_1", "title": "Lamp"}, "steps": {}, "run": {"id": "run_1"}}
    try:
        output = render(payload, context)
    except TemplateError:
        return  # refused
    assert "uid=" not in output and "subclass" not in output.lower()
    assert "<class" not in output and "function" not in output
    assert context == {
        "entity": {"id": "ent_1", "title": "Lamp"},
        "steps": {},
        "run": {"id": "run_1"},
    }


def test_admin_requires_staff(client, django_user_model):
    django_user_model.objects.create_user("plain", password="pw-for-tests-1")
    client.login(username="plain", password="pw-for-tests-1")
    response = client.get("/admin/jobs/run/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
