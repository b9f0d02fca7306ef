"""The run page lists the run's provider batches (`ai_generate` in batch mode): provider,
the provider's id, status and counts; and what its entities wait for."""

import pytest

from jobs.models import AiBatch, Run
from jobs.waits.ai_batch.services import ai_batch_submit
from tests.factories import make_entities, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db

STEPS = [
    {
        "id": "describe",
        "type": "ai_generate",
        "config": {"prompt": "Describe {{ entity.title }}", "outputField": "d", "mode": "batch"},
    }
]


def test_the_run_page_shows_its_batches_and_its_waiting_entities(staff, product_type):
    run = start_run(make_workflow(product_type, STEPS), make_entities(product_type, 3))
    run_inline(run.pk)
    batch = AiBatch.objects.get(run=run)
    page = staff.get(f"/admin/jobs/run/{run.pk}/change/").content.decode()
    assert "3 entities waiting at a step" in page and 'href="#run-batches"' in page
    assert batch.pk in page and "not sent yet" in page and "pending" in page

    ai_batch_submit(batch_id=batch.pk)  # what the task queued at the chunk's finish does
    batch.refresh_from_db()
    page = staff.get(f"/admin/jobs/run/{run.pk}/change/").content.decode()
    assert batch.provider_batch_id in page and "in_progress" in page
    assert Run.objects.get(pk=run.pk).waiting == 3
