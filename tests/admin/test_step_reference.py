"""The step type reference staff read: every option, nested ones too, described from the type's
own schema, Markdown rendered, each enum value explained where the schema explains it, an
example per type."""

import html as html_lib
import re

import pytest

from workflows.reference import markdown_inline, options
from workflows.steps import registry

pytestmark = pytest.mark.django_db


def test_markdown_becomes_html_and_raw_html_is_escaped():
    assert markdown_inline("Dotted paths (`seo.title`)") == "Dotted paths (<code>seo.title</code>)"
    assert markdown_inline("<script>x</script> *a*") == "&lt;script&gt;x&lt;/script&gt; <em>a</em>"


@pytest.mark.parametrize("step_type", list(registry), ids=lambda step_type: step_type.type)
def test_every_option_of_every_type_is_described_nested_ones_included(step_type):
    for option in options(step_type.config_schema):
        assert option.description.strip(), f"{step_type.type}: {option.path}"


def test_every_explained_enum_explains_each_of_its_values():
    def walk(node):
        if isinstance(node, dict):
            if "x-enumDescriptions" in node:
                yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    explained = [spec for step_type in registry for spec in walk(step_type.config_schema)]
    assert len(explained) >= 6  # operators, channels, and each transform operation's op
    for spec in explained:
        assert list(spec["x-enumDescriptions"]) == spec["enum"]


def test_the_reference_page_explains_nested_options_operators_ops_and_channels(staff):
    page = staff.get("/admin/workflows/workflow/step-types/").content.decode()
    assert "`" not in re.sub(r"<pre.*?</pre>", "", page, flags=re.S)  # Markdown rendered
    assert "Dotted paths (<code>seo.title</code>)" in page
    text = html_lib.unescape(re.sub(r"<[^>]+>", " ", page))
    for path in ["rules[].field", "rules[].pattern", "if.operator", "if.all", "operations[].from"]:
        assert path in text, path
    for value in ["notIn", "matches", "exists", "slugify", "rename", "webhook", "email"]:
        assert f"<dt><code>{value}</code></dt>" in page, value
    assert "operations[] with op: copy | rename" in text
    assert page.count("Example config") == len(list(registry))
    assert page.count('class="example"') == len(list(registry))
