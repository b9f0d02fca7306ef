"""A template is a program from a user: one render is bounded in the values it builds, the
work it does and what it writes, compiling never computes a value, and nothing but the
documented data is reachable (no Jinja globals)."""

import pytest

from tests.factories import make_entities
from workflows.sandbox import BoundedSandbox
from workflows.templating import TemplateError, render, template_problem

pytestmark = pytest.mark.django_db

TAGS = ["red", "green", "blue"] * 100
CONTEXT = {
    "entity": {"id": "ent_1", "title": "Lamp", "price": 3, "tags": TAGS},
    "steps": {"gen": "An answer."},
    "run": {"id": "run_1"},
}

TOO_LARGE = [
    "{{ 'x' * 10**8 }}",
    "{{ 'x' * 10**9 }}",
    "{{ 10**8 * 'x' }}",
    "{{ entity.tags * 100000 }}",
    "{{ 10**(10**8) > 1 }}",
    "{{ 2 ** 100000 }}",
    "{% set n = 10**1000 %}{{ n * n * n * n }}",
    "{{ 'x'|center(10**8) }}",
    "{{ 'x'|center(100000000) }}",
    "{{ entity.title|indent(100000000) }}",
    "{{ entity.title|replace('', 'x' * 900000) }}",
    "{{ entity.tags|join('x' * 100000) }}",
    "{{ entity.tags|batch(10**8, 'x')|list }}",
    "{{ entity.tags|tojson(indent=100000) }}",
    "{{ '%0100000000d' % 1 }}",
    "{{ '%.100000000f' % 1 }}",
    "{{ '%0100000000d'|format(1) }}",
    "{{ ('%s' * 10000) % ((entity.title * 1000,) * 10000) }}",
    "{{ '{:>100000000}'.format(1) }}",
    "{{ '{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}'.format(entity.tags|join * 400) }}",
    "{{ entity.title.center(10**8) }}",
    "{{ entity.title.ljust(10**8) }}",
    "{{ entity.title.zfill(10**8) }}",
    "{{ entity.title.replace('', entity.title * 300000) }}",
    "{{ ('a\t' * 1000).expandtabs(10**6) }}",
    "{{ entity.title.translate({76: 'x' * 900000}) }}",
    "{{ ('x' * 900000) ~ ('x' * 900000) }}",
    "{{ ('x' * 900000) + ('x' * 900000) }}",
    "{{ entity.tags|sum(start=[]) }}",
]

TOO_MUCH_WORK = [
    "{% for i in entity.tags %}{% for j in entity.tags %}{% endfor %}{% endfor %}",
    "{% for i in entity.tags %}{% for j in entity.tags %}{{ j }}{% endfor %}{% endfor %}",
    "{% for i in entity.tags %}{{ entity.tags|map('upper')|join }}{% endfor %}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "{% for t in entity.tags recursive %}{% if loop.depth < 5 %}{{ loop(entity.tags) }}"
    "{% endif %}{% endfor %}",
    "{% for t in entity.tags %}{% for u in entity.tags if u == 'x' %}{% endfor %}{% endfor %}",
    "{% for i in entity.tags %}{% set y = 'x'|center(999999) %}{% endfor %}",
    "{% for t in entity.tags %}" + "{% if t == 'x' %}{% endif %}" * 600 + "{% endfor %}",
]

TOO_MUCH_OUTPUT = [
    "{% for t in entity.tags %}{{ 'x'|center(999999) }}{% endfor %}",
    "{% set big %}{% for t in entity.tags %}{{ entity.tags * 2 }}{% endfor %}{% endset %}{{ 1 }}",
    "{% for t in entity.tags %}" + "x" * 19000 + "{% endfor %}",
    "{% set l = entity.tags * 5 %}{% set m = [l, l, l, l, l, l, l, l, l, l] %}"
    "{% set n = [m, m, m, m, m, m, m, m, m, m] %}{{ n }}",
    "{% set l = entity.tags * 5 %}{% set m = [l, l, l, l, l, l, l, l, l, l] %}"
    "{% set n = [m, m, m, m, m, m, m, m, m, m] %}{{ n|string|length }}",
]

GOOD = [
    ("Describe {{ entity.title }} for {{ entity.price * 2 }} euros", "Describe Lamp for 6 euros"),
    ("{{ entity.title ~ '!' * 3 }}", "Lamp!!!"),
    ("{{ entity.title|center(8) }}|", "  Lamp  |"),
    ("{{ '%05.1f' % entity.price }} {{ '%(t)s' % {'t': entity.title} }}", "003.0 Lamp"),
    ("{{ '{:>6}|{}'.format(entity.title, entity.price) }}", "  Lamp|3"),
    ("{{ 'x=%d'|format(entity.price) }}", "x=3"),
    ("{{ entity.tags[:3]|join(', ') }}", "red, green, blue"),
    ("{{ entity.tags|map('upper')|unique|join('/') }}", "RED/GREEN/BLUE"),
    ("{% for t in entity.tags[:3] %}{{ loop.index }}{{ t[0] }}{% endfor %}", "1r2g3b"),
    ("{{ entity.tags|length }} {{ entity.tags|select('eq', 'red')|list|length }}", "300 100"),
    ("{{ entity.tags[:2]|tojson }}", '["red", "green"]'),
    ("{{ 2 ** 10 }} {{ 7 // 2 }} {{ -entity.price }} {{ 10 ** 100 > 1 }}", "1024 3 -3 True"),
    ("{{ 'x' * 1000 }}", "x" * 1000),
    ("{{ steps.gen|wordwrap(5) }}", "An an\nswer."),
    ("{% macro b(x) %}[{{ x }}]{% endmacro %}{{ b(entity.title) }}", "[Lamp]"),
    ("{% for t in entity.tags %}{% for u in entity.tags[:3] %}{% endfor %}{% endfor %}ok", "ok"),
    ("{{ (entity.tags * 3)|length }}", "900"),
]


@pytest.mark.parametrize("source", TOO_LARGE)
def test_a_value_over_the_size_bound_is_refused_before_it_is_built(source):
    assert template_problem(source) is None  # valid syntax: compiling computes nothing
    with pytest.raises(TemplateError, match=r"Template (value too large|filter `\w+`)"):
        render(source, CONTEXT)


@pytest.mark.parametrize("source", TOO_MUCH_WORK)
def test_a_render_over_the_work_bound_stops_with_a_clear_error(source):
    with pytest.raises(TemplateError, match="Template did too much work"):
        render(source, CONTEXT)


@pytest.mark.parametrize("source", TOO_MUCH_OUTPUT)
def test_a_render_writing_too_much_stops_with_a_clear_error(source):
    with pytest.raises(
        TemplateError, match=r"Template (wrote too much|output is longer|value too)"
    ):
        render(source, CONTEXT)


@pytest.mark.parametrize(("source", "expected"), GOOD)
def test_templates_within_the_bounds_render_as_before(source, expected):
    assert render(source, CONTEXT) == expected


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 10**8 }}",
        "{{ 'x'|center(100000000) }}",
        "{{ 'x'|center(99999) ~ 'y'|center(99999) }}",
        "{{ '%0100000000d' % 1 }}",
        "{{ ('a' ~ 'b') * 99999 }}",
        "{% set x = 'x'|indent(99999, true) %}{{ x }}",
        "{{ 10**(10**8) > 1 }}",
    ],
)
def test_compiling_folds_no_value_so_the_compiled_code_stays_small(source):
    """Jinja folds constant expressions into the code it generates; none of ours is folded,
    so `POST /workflows` (which compiles every template) never builds a value."""
    code = BoundedSandbox().compile(source, raw=True)
    assert len(code) < 10 * len(source) + 10_000


@pytest.mark.parametrize("name", ["lipsum", "cycler", "joiner", "namespace", "dict", "range"])
def test_no_callable_is_reachable_beyond_the_data(name):
    assert render("{{ " + name + " }}", CONTEXT) == ""
    with pytest.raises(TemplateError, match="undefined"):
        render("{{ " + name + "(1) }}", CONTEXT)


def test_lipsum_no_longer_renders_a_function_with_its_address():
    output = render("{{ lipsum }}{{ cycler }}{{ joiner }}", CONTEXT)
    assert "function" not in output and "0x" not in output and "<" not in output


def test_every_render_gets_a_fresh_budget():
    source = "{% for i in entity.tags %}{% for j in entity.tags[:50] %}{% endfor %}{% endfor %}"
    for _ in range(5):  # each alone is within the bound; together they would not be
        assert render(source + "ok", CONTEXT) == "ok"


def _set(template: str) -> dict:
    return {
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "out", "value": template}]},
    }


@pytest.mark.parametrize("source", [TOO_LARGE[0], TOO_MUCH_WORK[0], TOO_MUCH_OUTPUT[0]])
def test_an_entity_over_a_bound_fails_alone_with_the_bound_named(run_steps, source):
    template = "{% if entity.title == 'big' %}" + source + "{% else %}fine{% endif %}"
    items, entities = run_steps(
        [_set(template)], {"title": "big", "tags": TAGS}, {"title": "small", "tags": TAGS}
    )
    assert [item.status for item in items] == ["failed", "completed"]
    assert items[0].error.startswith("Template ")
    assert "too" in items[0].error or "longer" in items[0].error
    assert entities[1].data["out"] == "fine"


@pytest.mark.parametrize("source", [TOO_LARGE[1], TOO_LARGE[4], TOO_MUCH_WORK[3]])
def test_the_test_endpoint_answers_an_over_bound_template_with_the_failure(
    api, product_type, source
):
    created = api.post(
        "/api/v1/workflows",
        {"name": "W", "entityTypeId": product_type.id, "steps": [{"id": "s", **_set(source)}]},
    )
    assert created.status_code == 201, created.json()
    [entity_id] = make_entities(product_type, 1)
    response = api.post(f"/api/v1/workflows/{created.json()['id']}/test", {"entityId": entity_id})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "failed" and body["error"].startswith("Template ")
    good = api.post(
        "/api/v1/workflows",
        {"name": "W2", "entityTypeId": product_type.id, "steps": [_set("{{ entity.title }}")]},
    )
    answer = api.post(f"/api/v1/workflows/{good.json()['id']}/test", {"entityId": entity_id})
    assert answer.json()["status"] == "completed"


TOO_DEEP = {
    "parentheses": "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}",
    "unary-minus": "{{ " + "-" * 5000 + "1 }}",
    "lists": "{{ " + "[" * 3000 + "]" * 3000 + " }}",
    "not": "{{ " + "not " * 3000 + "1 }}",
    "ifs": "{% if 1 %}" * 2000 + "{% endif %}" * 2000,
    "fors": "".join(f"{{% for a{i} in [1] %}}" for i in range(25)) + "x" + "{% endfor %}" * 25,
    "filters": "{{ 1" + "|string" * 300 + " }}",
    "attributes": "{{ entity" + ".a" * 300 + " }}",
}


@pytest.mark.parametrize("source", TOO_DEEP.values(), ids=TOO_DEEP.keys())
def test_a_template_nested_too_deeply_is_a_400_naming_its_field(api, product_type, source):
    """Jinja parses recursively and Python compiles the code it generates with limits of its
    own: past them a template is refused with the field named, never a 500."""
    operation = {"op": "set", "field": "x", "value": source}
    steps = [{"id": "t", "type": "transform", "config": {"operations": [operation]}}]
    body = {"name": "deep", "entityTypeId": product_type.pk, "steps": steps}
    response = api.post("/api/v1/workflows", body)
    assert response.status_code == 400, response.content[:300]
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "steps[0].config.operations[0].value"
    assert "nested too deeply" in detail["message"]


def test_a_template_nested_within_the_bounds_is_accepted():
    nested = "".join(f"{{% for a{i} in [1] %}}" for i in range(12)) + "x" + "{% endfor %}" * 12
    for source in [
        "{{ " + "(" * 40 + "1" + ")" * 40 + " }}",
        nested,
        "{{ 1" + "|string" * 50 + " }}",
    ]:
        assert template_problem(source) is None, source
