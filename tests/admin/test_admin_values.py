"""Values as staff read them: JSON (never a Python repr), money and counts for people."""

import pytest
from django.contrib.admin.utils import quote

from config.api.templatetags.admin_values import (
    VALUE_CHARS_SHOWN,
    as_json,
    as_json_block,
    cut_text,
    dollars,
    percent,
    thousands,
    usd,
)
from entities.models import Entity
from jobs.models import Run
from tests.factories import make_entities, make_workflow, start_run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("nano_usd", "shown"),
    [
        (0, "$0"),
        (1_200_000, "$0.0012"),
        (1_234_567, "$0.0012"),
        (1, "$0.000000001"),
        (500_000_000, "$0.50"),
        (12_345_000_000, "$12.35"),
        (1_234_000_000_000, "$1,234.00"),
        (None, "unknown"),
    ],
)
def test_money_is_dollars_with_the_digits_that_matter(nano_usd, shown):
    assert usd(nano_usd) == shown


def test_an_experiments_dollars_and_rates_read_as_the_runs_do():
    assert dollars(0.0000342) == "$0.000034" and dollars(12.3456) == "$12.35"
    assert dollars(0) == "$0" and dollars(None) == "unknown"
    assert percent(2 / 3) == "67%" and percent(1) == "100%" and percent(None) == ""


def test_an_experiment_page_shows_its_cost_in_dollars_and_rules_as_pass_rates(
    staff, finished_experiment
):
    experiment = finished_experiment(2)
    html = staff.get(f"/admin/jobs/experiment/{quote(experiment.pk)}/change/").content.decode()
    arms = html.split('id="experiment-arms"')[1].split("</table>")[0]
    assert arms.count("<td>$0") == 2 and arms.count(" s</td>") == 2
    scores = html.split('id="experiment-scores"')[1].split("</table>")[0]
    # The candidate's longer text breaks the `short` rule the baseline passes.
    assert "<td>100%</td><td>0%</td>" in scores


def test_values_are_json_and_counts_have_separators():
    value = {"done": True, "note": None, "tags": ["a"], "name": "Café"}
    assert as_json(value) == '{"done": true, "note": null, "tags": ["a"], "name": "Café"}'
    assert as_json_block({"a": {"b": False}}) == '{\n  "a": {\n    "b": false\n  }\n}'
    assert thousands(1234567) == "1,234,567" and thousands(None) == ""


def test_an_entity_s_data_is_edited_as_indented_json(staff, product_type):
    [entity_id] = make_entities(product_type, 1, published=True, note=None)
    html = staff.get(f"/admin/entities/entity/{quote(entity_id)}/change/").content.decode()
    assert "{\n  &quot;note&quot;: null,\n  &quot;price&quot;: 0," in html
    assert "True" not in html.split('name="data"')[1].split("</textarea>")[0]


def test_the_run_forms_show_entities_data_as_json(staff, product_type):
    make_entities(product_type, 1, published=True)
    workflow = make_workflow(product_type, [{"type": "publish", "config": {}}])
    for page in ("run", "test"):
        html = staff.get(f"/admin/workflows/workflow/{quote(workflow.pk)}/{page}/").content.decode()
        assert "&quot;published&quot;: true" in html and "&#x27;published&#x27;" not in html


def test_a_run_still_making_its_items_shows_an_ellipsis_not_null(staff, product_type):
    workflow = make_workflow(product_type, [{"type": "publish", "config": {}}])
    run = start_run(workflow, make_entities(product_type, 1))
    Run.objects.filter(pk=run.pk).update(total=None)
    listing = staff.get("/admin/jobs/run/").content.decode()
    assert "0 / … (0 failed)" in listing and "/ null" not in listing
    progress = staff.get(f"/admin/jobs/run/{quote(run.pk)}/progress/").json()
    assert progress["total"] is None
    # the page's script, which keeps the bar live, says the same as the server
    script = staff.get(f"/admin/jobs/run/{quote(run.pk)}/change/").content.decode()
    assert '(p.total === null ? "…" : p.total)' in script
    assert Entity.objects.count() == 1


def test_a_value_longer_than_a_cell_shows_is_cut_with_an_ellipsis():
    assert cut_text("é" * VALUE_CHARS_SHOWN) == "é" * VALUE_CHARS_SHOWN
    assert cut_text("é" * (VALUE_CHARS_SHOWN + 1)) == "é" * VALUE_CHARS_SHOWN + "…"
    assert cut_text("abcdef", 3) == "abc…"
