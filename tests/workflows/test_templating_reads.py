"""Templates that only print text and values read by name are rendered without the engine
(a run renders one per entity and step): what they print, and what they refuse, is what the
sandboxed engine prints and refuses, and every other template still goes to the engine."""

import pytest

from workflows import templating
from workflows.template_bounds import MAX_VALUE_SIZE
from workflows.templating import TemplateError, render

BIG = "x" * 300_000
CONTEXT = {
    "entity": {
        "id": "ent_1",
        "title": "Lamp ünïcödé \u2603",
        "brand": "Acme",
        "price": 3,
        "ratio": 0.1,
        "flag": True,
        "none": None,
        "tags": ["red", "green"],
        "seo": {"title": "Lamp | Acme", "deep": {"er": [1, {"a": "b"}]}},
        "items": "a key named like a dict method",
        "_private": "an underscored key",
        "with space": "spaced",
        "big": BIG,
        "huge": list(range(MAX_VALUE_SIZE // 3)),
    },
    "steps": {"draft": {"text": "Draft text.", "n": 2}, "plain": "a string output"},
    "run": {"id": "run_1"},
}

# Each of these is reads only: rendered without the engine.
READS = [
    "{{ entity.brand }} {{ entity.title }}",
    "{{entity.title}}",
    "{{- entity.title -}}  tail",
    "  {{ entity.title }}\n",
    "{{ entity['title'] }}|{{ entity[\"brand\"] }}",
    "{{ entity.price }} {{ entity.ratio }} {{ entity.flag }} {{ entity.none }}",
    "{{ entity.tags }} {{ entity.seo }}",
    "{{ entity.seo.title }} {{ entity.seo['deep'].er }}",
    "{{ steps.draft.text }} ({{ steps['draft'].n }}) {{ steps.plain }}",
    "{{ run.id }}/{{ entity.id }}",
    "{{ entity['items'] }}",
    "{{ entity._private }} {{ entity['with space'] }}",
    "{# a comment #}{{ entity.title }}{% raw %}{{ not read }}{% endraw %}",
    "{{ entity }}",
    "{{ entity.missing }}",  # a missing key: the engine prints nothing
    "{{ nothing }}",
    "{{ entity.missing.deeper }}",  # the engine refuses it
    "{{ entity.title.upper }}",  # a str's method: not a JSON object
    "{{ steps.plain.text }}",
    "{{ entity.big }}{{ entity.big }}{{ entity.big }}{{ entity.big }}",  # too much written
    "{{ entity.huge }}",  # too large a value to print
]

# Not reads only: the engine renders these (as before).
ENGINE = [
    "{{ entity.items }}",  # the dict's method, for the sandbox
    "{{ entity.title | upper }}",
    "{{ entity.tags[0] }}",
    "{{ entity.tags.0 }}",
    "{{ 'literal' }}",
    "{{ entity.price + 1 }}",
    "{% if entity.flag %}yes{% endif %}",
    "{{ entity.__class__ }}",
    "{{ entity.get('title') }}",
    "{% set x = 1 %}{{ x }}",
]


def _engine(source: str, monkeypatch) -> str | Exception:
    with monkeypatch.context() as patched:
        patched.setattr(templating, "_render_reads", lambda source, context: None)
        return _outcome(source)


def _outcome(source: str) -> str | Exception:
    try:
        return render(source, CONTEXT)
    except TemplateError as exc:
        return exc


@pytest.mark.parametrize("source", READS + ENGINE)
def test_what_is_printed_or_refused_is_the_engines(source, monkeypatch):
    ours, engines = _outcome(source), _engine(source, monkeypatch)
    if isinstance(engines, Exception):
        assert isinstance(ours, TemplateError), ours
        assert str(ours) == str(engines)
    else:
        assert ours == engines


def test_reads_only_templates_skip_the_engine_and_others_do_not(monkeypatch):
    for source in READS:
        assert templating._reads(source) is not None, source
    for source in ENGINE:
        assert templating._reads(source) is None, source
    compiled = []
    monkeypatch.setattr(templating, "_compile", lambda source: compiled.append(source))
    assert render("{{ entity.brand }} {{ entity.title }}", CONTEXT) == "Acme Lamp ünïcödé ☃"
    assert compiled == []  # the engine was not asked


def test_the_refusals_name_the_bound():
    with pytest.raises(TemplateError, match="wrote too much"):
        render("{{ entity.big }}" * 4, CONTEXT)
    with pytest.raises(TemplateError, match="too large"):
        render("{{ entity.huge }}", CONTEXT)
    with pytest.raises(TemplateError, match="longer than 200000 characters"):
        render("{{ entity.big }}", CONTEXT)


def test_names_read_are_the_context_names_a_template_reads():
    """What tells a review step's instructions the same for every entity (none, or only
    `run`) from ones rendered from the entity or its outputs."""
    from workflows.templating import names_read

    assert names_read("Check the style guide.") == frozenset()
    assert names_read("Run {{ run.id }}") == {"run"}
    assert names_read("{{ entity.title }} {{ steps.draft.text }}") == {"entity", "steps"}
    assert names_read("{% set who = 'you' %}{{ who }}") == frozenset()
    assert names_read("{% for tag in entity.tags %}{{ tag }}{% endfor %}") == {"entity"}
    assert names_read("{{ unclosed") == frozenset()  # refused when the workflow is saved


def test_reading_a_templates_names_first_leaves_it_rendered_without_the_engine(monkeypatch):
    """A review step asks which names its instructions read before it renders them: that
    analysis ran Jinja's optimizer over the shared syntax tree, turning its text into
    constants, and from then on the template no longer read as one of reads only (every
    review's instructions went through the engine, in every worker process)."""
    from workflows.templating import names_read, steps_read

    source = "Is {{ entity.title }} right for {{ steps.draft.text }}? (names read first)"
    assert names_read(source) == {"entity", "steps"}
    assert steps_read(source) == {"draft"}
    assert names_read(source) == {"entity", "steps"}  # cached, alike
    assert templating._reads(source) is not None
    compiled = []
    monkeypatch.setattr(templating, "_compile", lambda source: compiled.append(source))
    assert render(source, CONTEXT) == "Is Lamp ünïcödé ☃ right for Draft text.? (names read first)"
    assert compiled == []
