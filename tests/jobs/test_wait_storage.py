"""What a parked entity costs the database: its wait stores what changed, not copies of the
entity. A hundred large entities parked for review, measured in bytes as PostgreSQL stores
them (`pg_column_size` of every row the run wrote: items, waits, reviews, instructions).
Keeping the working copy and the committed copy in each checkpoint and a third copy on each
review, these 100 entities of 34 KB took 10.4 MB (3.0x their size); they now take 87 KB."""

import secrets

import pytest
from django.db import connection

from entities.models import Entity
from jobs.models import Review, ReviewInstructions, Run, RunItem, Wait
from tests.factories import make_entities, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db

# A style guide of 4 KB that does not depend on the entity (and does not compress away).
STYLE_GUIDE = " ".join(secrets.token_urlsafe(6) for _ in range(450))
STEPS = [
    {
        "id": "tidy",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "slug", "value": "{{ entity.title }}"}]},
    },
    {"id": "check", "type": "review", "config": {"instructions": STYLE_GUIDE}},
    {"id": "pub", "type": "publish", "config": {}},
]


def _large_entities(product_type, n: int) -> list[str]:
    from entities.services import entities_bulk_create

    # Text that compresses like prose does not: random words, 30 KB per entity.
    items = [
        {
            "data": {
                "title": f"Item {i}",
                "price": i,
                "body": " ".join(secrets.token_urlsafe(8) for _ in range(2700)),
                "specs": {f"spec{k}": secrets.token_hex(16) for k in range(40)},
            }
        }
        for i in range(n)
    ]
    return entities_bulk_create(entity_type=product_type, items=items)


def _bytes(sql: str, params) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0] or 0


def stored_bytes(run_id: str) -> int:
    """Every byte the run's rows take (TOAST included: pg_column_size of each row)."""
    tables = {
        "jobs_runitem": "run_id",
        "jobs_wait": "run_id",
        "jobs_review": "run_id",
        "jobs_reviewinstructions": "run_id",
        "jobs_run": "id",
    }
    total = 0
    for table, column in tables.items():
        total += _bytes(
            f"SELECT sum(pg_column_size(t.*)) FROM {table} t WHERE {column} = %s",
            [run_id],
        )
    return total


def test_a_hundred_large_entities_parked_for_review_store_what_changed_not_copies(product_type):
    ids = _large_entities(product_type, 100)
    entity_bytes = _bytes(
        "SELECT sum(pg_column_size(data)) FROM entities_entity WHERE id = ANY(%s)", [ids]
    )
    run = start_run(make_workflow(product_type, STEPS), ids)
    run_inline(run.pk)
    assert Run.objects.get(pk=run.pk).waiting == 100
    assert Review.objects.filter(run=run, status="pending").count() == 100
    parked = stored_bytes(run.pk)
    print(f"entities {entity_bytes} B, parked run {parked} B ({parked / entity_bytes:.2f}x)")
    assert parked < entity_bytes / 10
    assert RunItem.objects.filter(run=run).count() == Entity.objects.filter(pk__in=ids).count()


def test_a_parked_entity_s_checkpoint_and_review_hold_its_changes_and_share_instructions(
    product_type,
):
    ids = _large_entities(product_type, 3)
    run = start_run(make_workflow(product_type, STEPS), ids)
    run_inline(run.pk)
    for item in RunItem.objects.filter(run=run):
        assert item.state["changes"] == {"slug": item.state["changes"]["slug"]}
        assert item.state["removed"] == [] and "data" not in item.state
    reviews = Review.objects.filter(run=run).select_related("instructions")
    assert {review.instructions.text for review in reviews} == {STYLE_GUIDE}
    assert ReviewInstructions.objects.filter(run=run).count() == 1  # one text, three reviews
    stored = Entity.objects.get(pk=ids[0]).data
    review = reviews.get(entity_id=ids[0])
    assert review.proposed_on(stored) == {**stored, "slug": stored["title"]}


def test_a_text_several_reviews_read_is_one_row_of_the_run_and_an_entity_s_own_is_its_review_s(
    product_type, settings, api
):
    """Odd prices read one text, two in each chunk: one row of the run (the second chunk
    finds the first's). Even ones read a text of their own, stored in their review: a row
    of its own would be one more write per review, shared by none."""
    settings.RUN_CHUNK_SIZE = 4
    steps = [
        STEPS[0],
        {
            "id": "check",
            "type": "review",
            "config": {
                "instructions": "{% if entity.price % 2 %}Odd.{% else %}"
                "{{ entity.title }}{% endif %}"
            },
        },
        STEPS[2],
    ]
    ids = make_entities(product_type, 8)
    run = start_run(make_workflow(product_type, steps), ids)
    run_inline(run.pk)
    assert RunItem.objects.filter(run=run).values("chunk").distinct().count() == 2
    reviews = {
        r.entity_id: r for r in Review.objects.filter(run=run).select_related("instructions")
    }
    assert {pk: reviews[pk].instructions_rendered for pk in ids} == {
        pk: "Odd." if n % 2 else f"Item {n}" for n, pk in enumerate(ids)
    }
    assert list(ReviewInstructions.objects.filter(run=run).values_list("text", flat=True)) == [
        "Odd."
    ]
    odd = {reviews[pk].instructions_id for n, pk in enumerate(ids) if n % 2}
    assert len(odd) == 1 and None not in odd
    assert all(
        reviews[pk].instructions_id is None and reviews[pk].instructions_text == f"Item {n}"
        for n, pk in enumerate(ids)
        if n % 2 == 0
    )
    for n in (1, 2):  # as the API serves them, shared or the review's own
        response = api.get(f"/api/v1/reviews/{reviews[ids[n]].pk}")
        assert response.json()["instructions"] == ("Odd." if n % 2 else f"Item {n}")


@pytest.mark.django_db(transaction=True)
def test_reviews_stored_before_are_migrated_and_read_as_before(product_type):
    """jobs 0017: a review's `proposed` becomes its changes to the entity as stored, its
    rendered instructions a row its run's reviews share."""
    from django.db.migrations.executor import MigrationExecutor

    before, after = (
        [("jobs", "0016_view_metrics_permission")],
        [("jobs", "0017_review_changes_and_shared_instructions")],
    )
    [entity_id, gone_id] = make_entities(product_type, 2)
    workflow = make_workflow(product_type, STEPS)
    run = start_run(workflow, [entity_id, gone_id])
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        old = executor.loader.project_state(before).apps
        OldWait, OldReview = old.get_model("jobs", "Wait"), old.get_model("jobs", "Review")
        proposed = {"title": "Item 0", "slug": "item-0"}  # `price` removed, `slug` added
        for n, target in enumerate([entity_id, entity_id, gone_id]):
            wait = OldWait.objects.create(
                id=f"wait_{n:026d}",
                run_id=run.pk,
                item_id=n,
                entity_id=target,
                step_id="check",
                kind="review",
            )
            OldReview.objects.create(
                id=f"rev_{n:026d}",
                wait=wait,
                run_id=run.pk,
                entity_id=target,
                step_id="check",
                instructions=STYLE_GUIDE if n < 2 else "Other",
                fields=["slug"],
                proposed=proposed,
            )
        Entity.objects.filter(pk=gone_id).delete()
        executor = MigrationExecutor(connection)
        executor.migrate(after)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    stored = Entity.objects.get(pk=entity_id).data
    reviews = {r.pk: r for r in Review.objects.select_related("instructions")}
    first, second, third = (reviews[f"rev_{n:026d}"] for n in range(3))
    assert (first.changes, first.removed) == ({"slug": "item-0"}, ["price"])
    assert first.proposed_on(stored) == proposed
    assert third.proposed_on(None) == proposed  # its entity is gone: all of it kept
    assert first.instructions_id == second.instructions_id != third.instructions_id
    assert (first.instructions.text, third.instructions.text) == (STYLE_GUIDE, "Other")


@pytest.mark.django_db(transaction=True)
def test_jobs_0017_goes_back_with_reviews_stored_and_forward_again(product_type):
    """A rollback of a deploy: reviews stored in the new shape get their `proposed` and their
    text back (the old columns come back on a table with rows), and going forward again reads
    them as before."""
    from django.db.migrations.executor import MigrationExecutor

    before = [("jobs", "0016_view_metrics_permission")]
    [entity_id] = make_entities(product_type, 1)
    run = start_run(make_workflow(product_type, STEPS), [entity_id])
    instructions = ReviewInstructions.objects.create(run=run, digest="d" * 64, text=STYLE_GUIDE)
    wait = Wait.objects.create(
        run=run, item_id=1, entity_id=entity_id, step_id="check", kind="review"
    )
    Review.objects.create(
        id="rev_" + "1" * 26,
        wait=wait,
        run=run,
        entity_id=entity_id,
        step_id="check",
        instructions=instructions,
        fields=["slug"],
        changes={"slug": "item-0"},
        removed=["price"],
    )
    stored = Entity.objects.get(pk=entity_id).data
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        OldReview = executor.loader.project_state(before).apps.get_model("jobs", "Review")
        old = OldReview.objects.get(pk="rev_" + "1" * 26)
        expected = {key: value for key, value in stored.items() if key != "price"}
        assert old.proposed == {**expected, "slug": "item-0"}
        assert old.instructions == STYLE_GUIDE
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    review = Review.objects.get(pk="rev_" + "1" * 26)
    assert review.proposed_on(Entity.objects.get(pk=entity_id).data) == {
        **expected,
        "slug": "item-0",
    }


def test_instructions_that_do_not_depend_on_the_entity_are_shared_when_parked_one_at_a_time(
    product_type, settings
):
    """Entities reaching a review one per chunk (a trickle of events, a chunk of one) park
    alone: a text that reads only the run is still one row for the run, a text rendered from
    each entity is its review's own."""
    settings.RUN_CHUNK_SIZE = 1
    ids = make_entities(product_type, 3)
    texts = {
        "Check the run {{ run.id }} against the style guide.": 1,
        "Is {{ entity.title }} right?": 0,
    }
    for instructions, rows in texts.items():
        steps = [STEPS[0], {**STEPS[1], "config": {"instructions": instructions}}, STEPS[2]]
        run = start_run(make_workflow(product_type, steps), ids)
        run_inline(run.pk)
        assert RunItem.objects.filter(run=run).values("chunk").distinct().count() == 3
        assert ReviewInstructions.objects.filter(run=run).count() == rows
        reviews = list(Review.objects.filter(run=run).select_related("instructions"))
        assert len(reviews) == 3
        assert all((review.instructions_id is None) == (rows == 0) for review in reviews)
        rendered = {review.instructions_rendered for review in reviews}
        assert rendered == (
            {f"Check the run {run.pk} against the style guide."}
            if rows
            else {f"Is Item {n} right?" for n in range(3)}
        )


def test_a_process_on_the_code_before_jobs_0031_still_parks_reviews(product_type):
    """A rolling deploy: a worker still on the code before the column writes reviews without
    it (`rows_insert` names its columns); the database's default fills it."""
    from config.bulk import rows_insert

    [entity_id] = make_entities(product_type, 1)
    run = start_run(make_workflow(product_type, STEPS), [entity_id])
    instructions = ReviewInstructions.objects.create(run=run, digest="d" * 64, text=STYLE_GUIDE)
    wait = Wait.objects.create(
        run=run, item_id=1, entity_id=entity_id, step_id="check", kind="review"
    )
    row = {
        "id": "rev_" + "2" * 26,
        "wait": wait.pk,
        "run": run.pk,
        "entity_id": entity_id,
        "step_id": "check",
        "status": "pending",
        "instructions": instructions.pk,
        "fields": ["slug"],
        "group": "",
        "on_timeout": "reject",
        "on_reject": "stop",
        "changes": {},
        "removed": [],
        "created_at": run.created_at,
        "expires_at": None,
        "decided_by": "",
        "comment": "",
    }
    rows_insert(Review, [row], fields=list(row))
    review = Review.objects.select_related("instructions").get(pk=row["id"])
    assert (review.instructions_text, review.instructions_rendered) == ("", STYLE_GUIDE)


@pytest.mark.django_db(transaction=True)
def test_jobs_0031_goes_back_with_reviews_holding_their_own_text_and_forward_again(
    product_type, settings
):
    """A rollback of a deploy: a review's own text (one no other review of its chunk read)
    becomes a row its run shares again, one per text, so the old column's NOT NULL holds
    and every review reads what it read; forward again, they read the same."""
    from django.db.migrations.executor import MigrationExecutor

    settings.RUN_CHUNK_SIZE = 2
    steps = [
        STEPS[0],
        {"id": "check", "type": "review", "config": {"instructions": "Is {{ entity.title }}?"}},
        STEPS[2],
    ]
    ids = make_entities(product_type, 3)
    run = start_run(make_workflow(product_type, steps), ids)
    run_inline(run.pk)
    texts = {pk: f"Is Item {n}?" for n, pk in enumerate(ids)}
    assert ReviewInstructions.objects.filter(run=run).count() == 0  # each its own
    before = [("jobs", "0030_experiment_side_claimed_at")]
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        old = executor.loader.project_state(before).apps
        reviews = old.get_model("jobs", "Review").objects.filter(run_id=run.pk)
        assert dict(reviews.values_list("entity_id", "instructions__text")) == texts
        assert old.get_model("jobs", "ReviewInstructions").objects.count() == 3
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    reviews = Review.objects.filter(run=run).select_related("instructions")
    assert {review.entity_id: review.instructions_rendered for review in reviews} == texts


@pytest.mark.django_db(transaction=True)
def test_batch_requests_stored_before_keep_their_wait_id_as_their_id_both_ways(product_type):
    """jobs 0026: a batch request gets an id of its own (its `custom_id`: the wait's id for
    a run's), the requests' table made anew with its rows; going back keeps a run's."""
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("jobs", "0025_experiment_summary")], [("jobs", "0026_experiment_batches")]
    [entity_id] = make_entities(product_type, 1)
    run = start_run(make_workflow(product_type, STEPS), [entity_id])
    wait = Wait.objects.create(
        run=run, item_id=1, entity_id=entity_id, step_id="s", kind="ai_batch"
    )

    def stored(apps):
        return list(
            apps.get_model("jobs", "AiBatchRequest").objects.values_list(
                "wait_id", "batch_id", "attempts", "usage"
            )
        )

    try:
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        old = executor.loader.project_state(before).apps
        batch = old.get_model("jobs", "AiBatch").objects.create(
            id="aib_" + "1" * 26, run_id=run.pk, step_id="s", provider="local", total=1
        )
        old.get_model("jobs", "AiBatchRequest").objects.create(
            wait_id=wait.pk, batch_id=batch.pk, request={}, attempts=2, usage={"calls": 1}
        )
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps
        [request] = new.get_model("jobs", "AiBatchRequest").objects.all()
        assert (request.id, request.wait_id, request.attempts) == (wait.pk, wait.pk, 2)
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        assert stored(executor.loader.project_state(before).apps) == [
            (wait.pk, batch.pk, 2, {"calls": 1})
        ]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def test_waits_and_their_kinds_rows_are_not_checked_row_by_row_at_commit():
    """The engine inserts a wait and its kind's row (a review, a delay, an event wait) as it
    parks an entity, in the chunk's transaction, and retention deletes them with their run
    (tests/jobs/test_retention.py): a foreign key checked by the database would cost a
    trigger per row at commit, a tenth of parking a chunk (docs/benchmarks.md)."""
    tables = ["jobs_wait", "jobs_review", "jobs_delay", "jobs_eventwait"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s)",
            [tables],
        )
        assert cursor.fetchall() == []
        cursor.execute(  # the reviews' unique wait stays: one review per wait
            "SELECT count(*) FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
            ["jobs_review", "CREATE UNIQUE INDEX%(wait_id)"],
        )
        assert cursor.fetchone()[0] == 1
