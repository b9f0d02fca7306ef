"""Work that walks a large value costs by the size of what it walks, and every render has a
wall-clock limit: `{% for i in s %}{{ s|wordcount }}{% endfor %}` over 900,000 characters is
refused at once, in a render, in `/test`, in `/estimate` and in a worker's run alike."""

import math

import pytest

from tests.factories import make_entities, make_workflow
from tests.template_walks import WALKS
from tests.template_walks import looped as _looped
from workflows.templating import TemplateError, render, rendering_time_limit

pytestmark = pytest.mark.django_db

CONTEXT = {"entity": {"id": "ent_1", "title": "Lamp", "tags": ["red", "green", "blue"] * 100}}


@pytest.mark.parametrize("expression", WALKS)
def test_a_walk_of_a_large_value_costs_its_size(expression, settings):
    # The step budget refuses it, not the clock: a machine busy enough to take 5 s over the
    # work before the budget is spent would meet the time limit first.
    settings.TEMPLATE_RENDER_TIMEOUT_S = 120
    with pytest.raises(TemplateError, match="Template did too much work: more than 50,000 steps"):
        render(_looped(expression), CONTEXT)


def test_the_reported_template_is_refused_at_its_first_walk():
    source = '{% set s = "ab " * 300000 %}{% for i in s %}{{ s|wordcount }}{% endfor %}'
    with pytest.raises(TemplateError, match="Template did too much work"):
        render(source, CONTEXT)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ entity.tags|sort|first }} {{ entity.tags|unique|list|length }}", "blue 3"),
        ("{{ entity.title in entity.tags }} {{ 'red' in entity.tags }}", "False True"),
        ("{{ (entity.tags|join(' '))|wordcount }} {{ entity.tags.count('red') }}", "300 100"),
        ("{% for t in entity.tags %}{% if t == 'red' %}r{% endif %}{% endfor %}", "r" * 100),
        ("{{ ('ab ' * 10000)|wordcount }} {{ ('ab ' * 10000).count('a') }}", "10000 10000"),
        ("{% set s = 'ab ' * 300000 %}{{ s|length }} {{ s[:2] }} {{ s|first }}", "900000 ab a"),
        (
            "{% for t in entity.tags[:3] %}{% set x = t.replace('e', 'E') %}{{ x }}{% endfor %}",
            "rEdgrEEnbluE",
        ),
    ],
)
def test_walks_of_ordinary_values_render_as_before(source, expected):
    assert render(source, CONTEXT) == expected


def test_a_render_past_its_time_limit_stops_naming_the_setting(settings):
    source = "{% for i in entity.tags %}{% for j in entity.tags[:50] %}{% endfor %}{% endfor %}"
    assert render(source + "ok", CONTEXT) == "ok"  # within the step bound
    settings.TEMPLATE_RENDER_TIMEOUT_S = 0.001
    with pytest.raises(TemplateError, match=r"took too long: .*TEMPLATE_RENDER_TIMEOUT_S"):
        render(source, CONTEXT)


def test_renders_in_one_time_limit_share_it(settings):
    settings.TEMPLATE_RENDER_TIMEOUT_S = 0.001
    source = "{% for i in entity.tags %}{% for j in entity.tags[:50] %}{% endfor %}{% endfor %}"
    with rendering_time_limit():
        with pytest.raises(TemplateError, match="took too long"):
            render(source, CONTEXT)
        with pytest.raises(TemplateError, match="took too long"):
            render("{{ entity.title }}", CONTEXT)  # nothing is left for the next one
    assert render("{{ entity.title }}", CONTEXT) == "Lamp"


def _transform(template: str) -> dict:
    return {
        "id": "t",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "out", "value": template}]},
    }


@pytest.mark.parametrize("expression", WALKS)
def test_the_test_endpoint_fails_the_entity_naming_the_limit(api, product_type, expression):
    created = api.post(
        "/api/v1/workflows",
        {"name": "W", "entityTypeId": product_type.id, "steps": [_transform(_looped(expression))]},
    )
    assert created.status_code == 201, created.json()
    [entity_id] = make_entities(product_type, 1)
    response = api.post(f"/api/v1/workflows/{created.json()['id']}/test", {"entityId": entity_id})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "failed"
    assert body["error"].startswith("Template did too much work: more than 50,000 steps")


@pytest.mark.parametrize("expression", WALKS)
def test_an_estimate_counts_a_walking_prompt_as_no_render(api, product_type, expression):
    """The estimate renders each sampled entity's prompt; a prompt over its bounds would fail
    the entity, so it is counted at its own length, and the estimate answers."""
    prompt = _looped(expression)
    step = {"id": "g", "type": "ai_generate", "config": {"prompt": prompt, "outputField": "d"}}
    workflow = make_workflow(product_type, [step])
    ids = make_entities(product_type, 3)
    response = api.post(f"/api/v1/workflows/{workflow.pk}/estimate", {"entityIds": ids})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["basis"] == "sample"
    assert body["inputTokens"] == math.ceil(3 * len(prompt) / 4)
