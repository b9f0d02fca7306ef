"""The admin's revert page counts what a run changed and what of it was changed since, among
the first REVERT_PAGE_COUNTS entities only, so that the page of a run of a million answers
at once; it says when it counted a part."""

import pytest
from django.contrib.admin.utils import quote

from entities.services import entity_update
from jobs import admin as jobs_admin
from tests.factories import make_entities, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db

STEPS = [
    {
        "id": "sum",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "summary", "value": "s"}]},
    }
]


@pytest.fixture
def changed_run(product_type):
    """A run that changed 6 entities, the first and the last of them edited since."""
    ids = sorted(make_entities(product_type, 6))
    run = start_run(make_workflow(product_type, STEPS), ids)
    run_inline(run.pk)
    for entity_id in (ids[0], ids[-1]):
        entity_update(entity_id=entity_id, data={"summary": "edited since"})
    return run


def _page(staff, run) -> str:
    response = staff.get(f"/admin/jobs/run/{quote(run.pk)}/revert/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_revert_page_counts_every_entity_of_a_run_within_its_limit(staff, changed_run):
    page = _page(staff, changed_run)
    assert '<strong id="revert-changed">6</strong>' in page
    assert '<strong id="revert-changed-since">2</strong>' in page
    assert '<strong id="revert-changed-during">0</strong>' in page
    assert 'value="Revert all 6, changed since or not"' in page


def test_the_revert_page_of_a_larger_run_counts_its_first_entities_and_says_so(
    staff, changed_run, monkeypatch
):
    monkeypatch.setattr(jobs_admin, "REVERT_PAGE_COUNTS", 4)
    page = _page(staff, changed_run)
    # The first four by id: the first entity was edited since, the last is past the count.
    assert '<strong id="revert-changed">4 or more</strong>' in page
    assert "of the first 4 (by id" in page
    assert '<strong id="revert-changed-since">1</strong>' in page
    assert 'value="Revert all, changed since or not"' in page


def test_the_revert_page_counts_an_entity_written_during_the_run_and_offers_to_force_it(
    staff, product_type
):
    """An edit between two of the run's commits (while the entity waited at a review): the
    revert skips the entity unless forced, so the page counts it and offers the force."""
    from tests.jobs.test_reverts import _run_edited_while_it_waited

    run, _ = _run_edited_while_it_waited(product_type, {"summary": "by a person"})
    page = _page(staff, run)
    assert '<strong id="revert-changed">1</strong>' in page
    assert '<strong id="revert-changed-since">0</strong>' in page
    assert '<strong id="revert-changed-during">1</strong>' in page
    assert 'value="Revert all 1, changed since or not"' in page


def test_the_revert_page_of_a_run_nothing_changed_since_offers_no_force(staff, product_type):
    ids = make_entities(product_type, 3)
    run = start_run(make_workflow(product_type, STEPS), ids)
    run_inline(run.pk)
    page = _page(staff, run)
    assert '<strong id="revert-changed-during">0</strong>' in page
    assert 'id="confirm-revert"' in page and 'id="confirm-revert-force"' not in page


def test_a_revert_s_page_names_the_run_it_reverts_and_offers_no_retry(staff, product_type):
    """A revert that failed an entity is not retried (that would run the workflow's steps):
    its page links the run it reverts, to revert again, and has no retry button."""
    from tests.jobs.test_reverts import _failed_revert

    run, revert, _ = _failed_revert(product_type)
    page = staff.get(f"/admin/jobs/run/{quote(revert.pk)}/change/").content.decode()
    assert 'id="run-reverted"' in page and run.pk in page
    assert "revert that run again" in page
    assert 'id="retry-run"' not in page


def test_a_revert_s_page_names_a_reverted_run_pruned_since_without_a_dead_link(staff, product_type):
    from jobs.models import Run, RunItem, RunLog
    from tests.jobs.test_reverts import _failed_revert

    run, revert, _ = _failed_revert(product_type)
    RunItem.objects.filter(run=run).delete()
    RunLog.objects.filter(run=run).delete()
    Run.objects.filter(pk=run.pk).delete()  # as retention deletes a run past RUNS_KEEP_DAYS
    page = staff.get(f"/admin/jobs/run/{quote(revert.pk)}/change/").content.decode()
    assert f'<span id="run-reverted">{run.pk}</span> (pruned since)' in page


def test_the_revert_page_of_a_run_that_changed_nothing_says_so_and_offers_no_revert(
    staff, product_type
):
    """Its summary was already the one the run sets: no entity changed, and the page offered
    a revert that could only answer 'nothing to revert'."""
    ids = make_entities(product_type, 2, summary="s")
    run = start_run(make_workflow(product_type, STEPS), ids)
    run_inline(run.pk)
    page = _page(staff, run)
    assert 'id="revert-nothing"' in page
    assert "there is nothing to revert" in page
    assert 'id="confirm-revert"' not in page
