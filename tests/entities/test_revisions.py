import base64
import datetime

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.api.fields import to_millis
from entities.commits import WorkingCopy, entities_commit
from entities.models import Entity, EntityRevision
from entities.revisions import RevisionSource, Source, revisions_prune
from entities.run_changes import (
    run_changed_batch,
    run_changed_counts,
    run_changed_during_count,
    run_revisions_of,
)
from entities.services import entity_update
from tests.factories import PUBLISH_BETWEEN, make_entities, make_workflow, run_inline, start_run
from tests.plans import rows_read

pytestmark = pytest.mark.django_db

PUBLISH = [{"id": "pub", "type": "publish", "config": {}}]


def _create(api, product_type, data):
    response = api.post("/api/v1/entities", {"entityTypeId": product_type.id, "data": data})
    assert response.status_code == 201
    return response.json()["id"]


def test_each_api_write_keeps_a_revision_of_what_it_changed(api, product_type):
    entity_id = _create(api, product_type, {"title": "Lamp", "price": 3})
    api.patch(f"/api/v1/entities/{entity_id}", {"data": {"price": 4, "seo": {"title": "L"}}})
    response = api.get(f"/api/v1/entities/{entity_id}/revisions")
    assert response.status_code == 200
    newest, first = response.json()
    assert newest["version"] == 2
    assert newest["source"]["type"] == "api"
    assert set(newest["source"]) == {"type", "userId", "apiKeyId"}
    assert newest["changes"] == [
        {"field": "data.price", "before": 3, "after": 4},
        {"field": "data.seo", "before": None, "after": {"title": "L"}},
    ]
    assert first["version"] == 1
    assert {"field": "status", "before": None, "after": "draft"} in first["changes"]
    assert {"field": "data.title", "before": None, "after": "Lamp"} in first["changes"]


def test_a_version_is_rebuilt_and_restored_as_a_new_version(api, product_type):
    entity_id = _create(api, product_type, {"title": "Lamp", "price": 3})
    api.patch(f"/api/v1/entities/{entity_id}", {"data": {"price": 4, "seo": {"title": "L"}}})
    api.patch(f"/api/v1/entities/{entity_id}", {"data": {"title": "Big lamp"}})
    at_1 = api.get(f"/api/v1/entities/{entity_id}/revisions/1").json()
    assert at_1["data"] == {"title": "Lamp", "price": 3}
    assert at_1["status"] == "draft"
    response = api.post(f"/api/v1/entities/{entity_id}/restore", {"version": 1})
    assert response.status_code == 200
    assert response.json()["data"] == {"title": "Lamp", "price": 3}
    assert response.json()["version"] == 4
    [restore] = api.get(f"/api/v1/entities/{entity_id}/revisions?limit=1").json()
    assert restore["source"]["type"] == "restore"
    assert {c["field"] for c in restore["changes"]} == {"data.price", "data.seo", "data.title"}


def test_a_restore_keeping_the_publish_time_records_no_publish_time_change(api, product_type):
    """Revisions keep `publishedAt` in ms: a restore gave the entity back that time, which
    differed from the stored one below the ms, so the revision listed a `publishedAt`
    change whose before and after were the same number."""
    [entity_id] = make_entities(product_type, 1)
    run_inline(start_run(make_workflow(product_type, PUBLISH), [entity_id]).pk)
    entity = Entity.objects.get(pk=entity_id)
    below_a_ms = entity.published_at.replace(
        microsecond=entity.published_at.microsecond // 1000 * 1000 + 456
    )
    Entity.objects.filter(pk=entity_id).update(published_at=below_a_ms)
    response = api.post(f"/api/v1/entities/{entity_id}/restore", {"version": entity.version})
    assert response.status_code == 200
    assert response.json()["publishedAt"] == to_millis(below_a_ms)
    assert response.json()["version"] == entity.version  # nothing changed: nothing written
    [newest] = api.get(f"/api/v1/entities/{entity_id}/revisions?limit=1").json()
    assert newest["version"] == entity.version and newest["source"]["type"] == "run"
    assert Entity.objects.get(pk=entity_id).published_at == below_a_ms


def test_revisions_are_paged_newest_first(api, product_type):
    entity_id = _create(api, product_type, {"title": "Lamp"})
    for price in range(1, 5):
        api.patch(f"/api/v1/entities/{entity_id}", {"data": {"price": price}})
    response = api.get(f"/api/v1/entities/{entity_id}/revisions?limit=2")
    assert [r["version"] for r in response.json()] == [5, 4]
    next_url = response["Link"].split(";")[0].strip("<>")
    assert [r["version"] for r in api.get(next_url).json()] == [3, 2]


def test_a_page_of_revisions_reads_its_rows_alone_however_many_the_entity_has(api, product_type):
    """Keyed on the version, a page is read from the (entity, version) index: its rows and
    one more, not every revision of the entity sorted (0.5 s at 500,000). A cursor handed
    out when pages were keyed on ids goes on from that revision."""
    [entity_id] = make_entities(product_type, 1)
    [other] = make_entities(product_type, 1)
    revisions = [
        EntityRevision(entity_id=eid, version=version, created_at=timezone.now(), changes=[])
        for eid in (entity_id, other)
        for version in range(2, 2001)
    ]
    EntityRevision.objects.bulk_create(revisions, batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {EntityRevision._meta.db_table}")
    with CaptureQueriesContext(connection) as queries:
        response = api.get(f"/api/v1/entities/{entity_id}/revisions?limit=50")
    assert [r["version"] for r in response.json()] == list(range(2000, 1950, -1))
    [page] = [q["sql"] for q in queries.captured_queries if "_page_bytes" in q["sql"]]
    # A server-side cursor: the rows fetched are the page's and one more.
    fetched = page.split(" CURSOR FOR ", 1)[-1] + " LIMIT 51"
    assert _revision_rows_read(fetched, []) <= 52
    following = api.get(response["Link"].split(";")[0].strip("<>")).json()
    assert following[0]["version"] == 1950
    old_cursor = base64.urlsafe_b64encode(
        str(EntityRevision.objects.get(entity_id=entity_id, version=1000).pk).encode()
    ).decode()
    old_style = api.get(f"/api/v1/entities/{entity_id}/revisions?limit=2&cursor={old_cursor}")
    assert [r["version"] for r in old_style.json()] == [999, 998]
    for bad in ("cmV2X3g", "djE5OTk5OTk5OTk5OTk5OTk5", "OTk5OTk5OTk5", "dg"):  # rev_x, v1e17, ...
        answer = api.get(f"/api/v1/entities/{entity_id}/revisions?cursor={bad}")
        assert answer.status_code == 400, bad
        assert answer.json()["error"]["details"][0]["field"] == "cursor"


def test_careless_restore_requests_are_clear_4xx(api, product_type):
    entity_id = _create(api, product_type, {"title": "Lamp"})
    url = f"/api/v1/entities/{entity_id}/restore"
    assert api.post(url, {"version": 9}).status_code == 400
    assert api.post(url, {"version": "one"}).status_code == 400
    assert api.post(url, {"version": 1, "force": True}).status_code == 400
    assert api.post(url, {}).status_code == 400
    assert api.get(f"/api/v1/entities/{entity_id}/revisions/7").status_code == 404
    assert api.post("/api/v1/entities/ent_missing/restore", {"version": 1}).status_code == 404
    assert Entity.objects.get(pk=entity_id).version == 1


def test_a_version_that_no_longer_fits_the_type_s_schema_is_refused_naming_it(api, product_type):
    """The schema changed since: the version's data is named as the problem, not the body's
    (which holds no data), and nothing is written."""
    from entities.services import entity_type_update
    from tests.factories import PRODUCT_SCHEMA

    entity_id = _create(api, product_type, {"title": "Lamp", "price": 0})
    api.patch(f"/api/v1/entities/{entity_id}", {"data": {"price": 4}})
    price = {"type": "number", "minimum": 1}
    schema = {**PRODUCT_SCHEMA, "properties": {**PRODUCT_SCHEMA["properties"], "price": price}}
    entity_type_update(entity_type=product_type, schema=schema)
    response = api.post(f"/api/v1/entities/{entity_id}/restore", {"version": 1})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == (
        "Version 1 no longer fits the entity type's schema (changed since): "
        "data.price: must be at least 1"
    )
    assert error["details"][0] == {
        "field": "version",
        "message": "Version 1's data.price: must be at least 1",
        "code": "schema",
    }
    assert Entity.objects.get(pk=entity_id).version == 2


def test_retention_keeps_the_newest_revision_and_restore_of_a_pruned_version_is_409(
    api, product_type, settings
):
    settings.ENTITY_REVISIONS_KEEP_DAYS = 1
    entity_id = _create(api, product_type, {"title": "Lamp", "price": 1})
    api.patch(f"/api/v1/entities/{entity_id}", {"data": {"price": 2}})
    [only] = make_entities(product_type, 1)  # one revision, old: kept as the newest
    EntityRevision.objects.update(created_at=timezone.now() - datetime.timedelta(days=2))
    assert revisions_prune(now=timezone.now(), limit=100) == 1
    kept = EntityRevision.objects.values_list("entity_id", "version")
    assert sorted(kept) == sorted([(entity_id, 2), (only, 1)])
    response = api.post(f"/api/v1/entities/{entity_id}/restore", {"version": 1})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "revision_not_kept"


def test_deleting_an_entity_deletes_its_revisions(api, product_type):
    """The database does not check the revisions' key (a trigger per revision at commit):
    the deletes, through the API and the ORM (the admin's bulk delete), remove them."""
    entity_id, other, kept = (_create(api, product_type, {"title": t}) for t in "ABC")
    for pk in (entity_id, other):
        assert api.patch(f"/api/v1/entities/{pk}", {"data": {"title": "Lamp"}}).status_code == 200
    assert EntityRevision.objects.filter(entity_id__in=[entity_id, other]).count() == 4
    assert api.delete(f"/api/v1/entities/{entity_id}").status_code == 204
    Entity.objects.filter(pk=other).delete()
    assert not EntityRevision.objects.filter(entity_id__in=[entity_id, other]).exists()
    assert EntityRevision.objects.filter(entity_id=kept).count() == 1


def test_a_commit_records_one_revision_per_entity_with_status_changes(product_type):
    ids = make_entities(product_type, 3)
    edited = ids[0]
    entity_update(entity_id=edited, data={"price": 99})  # meanwhile: the merge path
    copies = []
    for entity in Entity.objects.filter(pk__in=ids):
        version = 1 if entity.pk == edited else entity.version
        base = {**entity.data, "price": 0} if entity.pk == edited else entity.data
        copies.append(
            WorkingCopy(entity.pk, base, {**base, "summary": "s"}, version, product_type.schema)
        )
    with transaction.atomic():
        entities_commit(copies=copies, status="published")
    for entity_id in ids:
        revision = EntityRevision.objects.get(
            entity_id=entity_id, version=Entity.objects.get(pk=entity_id).version
        )
        fields = {c["field"]: c for c in revision.changes}
        assert fields["data.summary"] == {"field": "data.summary", "after": "s"}
        assert fields["status"] == {"field": "status", "before": "draft", "after": "published"}
        assert fields["publishedAt"]["before"] is None
        assert revision.source == "run"


def test_a_run_records_its_revisions_with_the_run_and_step(product_type):
    ids = make_entities(product_type, 5)
    workflow = make_workflow(
        product_type,
        [
            {
                "id": "s",
                "type": "transform",
                "config": {"operations": [{"op": "set", "field": "summary", "value": "x"}]},
            },
            {"id": "pub", "type": "publish", "config": {}},
        ],
    )
    run = start_run(workflow, ids)
    run_inline(run.pk)
    revisions = EntityRevision.objects.filter(run_id=run.pk)
    assert revisions.count() == 5
    revision = revisions.first()
    assert (revision.source, revision.step_id, revision.version) == ("run", "pub", 2)
    assert {c["field"] for c in revision.changes} == {"data.summary", "status", "publishedAt"}


def test_a_reviewers_edit_is_recorded_as_the_reviews_revision(api, product_type):
    from jobs.engine.waits import run_waits_resume
    from jobs.models import Review
    from tests.jobs.test_reviews_api import parked

    run, [entity_id], [review_id] = parked(product_type, n=1)
    response = api.post(f"/api/v1/reviews/{review_id}/approve", {"data": {"slug": "item-zero"}})
    assert response.status_code == 200
    run_waits_resume(run_id=run.pk)
    run_inline(run.pk)
    [newest, _created] = api.get(f"/api/v1/entities/{entity_id}/revisions").json()
    assert newest["source"]["type"] == "review"
    assert newest["source"]["runId"] == run.pk
    assert newest["source"]["stepId"] == "check"
    assert newest["source"]["userId"]
    assert {"field": "data.slug", "before": None, "after": "item-zero"} in newest["changes"]
    assert {"field": "status", "before": "draft", "after": "published"} in newest["changes"]
    assert Review.objects.get(pk=review_id).status == "approved"


def test_a_commit_writes_its_entities_and_their_revisions_in_one_statement(product_type):
    """The common case of a run's commit (entities still at the version read): the update
    and the revisions, with the status and publishedAt each had at that version, are one
    statement, whatever the number of entities; a copy decided by a reviewer keeps its own
    source."""
    ids = make_entities(product_type, 30)
    # One published already: its publishedAt before, in ms, goes in its revision.
    Entity.objects.filter(pk=ids[0]).update(status="published", published_at=timezone.now())
    entities = {entity.pk: entity for entity in Entity.objects.filter(pk__in=ids)}
    before = {pk: to_millis(entity.published_at) for pk, entity in entities.items()}
    reviewer = RevisionSource(Source.REVIEW, run_id="run_1", step_id="check", user_id="7")
    copies = [
        WorkingCopy(
            pk,
            entity.data,
            {**entity.data, "summary": "s"},
            entity.version,
            product_type.schema,
            product_type.pk,
            reviewer if pk == ids[1] else None,
            (entity.status, entity.published_at),  # as read with its version
        )
        for pk, entity in entities.items()
    ]
    source = RevisionSource(Source.RUN, run_id="run_1", step_id="pub")
    with transaction.atomic(), CaptureQueriesContext(connection) as statements:
        results = entities_commit(copies=copies, status="archived", source=source)
    writes = [s["sql"] for s in statements if "entities_entity" in s["sql"].split(" WHERE")[0]]
    assert len(writes) == 1, writes
    assert all(isinstance(version, int) for version in results.values())
    for pk, entity in Entity.objects.in_bulk(ids).items():
        revision = EntityRevision.objects.get(entity_id=pk, version=entity.version)
        assert revision.changes == [
            {"field": "data.summary", "after": "s"},
            {"field": "status", "before": entities[pk].status, "after": "archived"},
            *(
                [{"field": "publishedAt", "before": before[pk], "after": None}]
                if before[pk] is not None
                else []
            ),
        ]
        expected = reviewer if pk == ids[1] else source
        assert RevisionSource.of_revision(revision) == expected


def _revision_rows_read(sql: str, params: list) -> int:
    return rows_read(sql, params, table=EntityRevision._meta.db_table)


# Two commits per entity: a publish between two transforms, so 2 revisions each (unlike
# PUBLISH_BETWEEN, a second run of it changes nothing but the status it publishes).
TWO_COMMITS = [
    {
        "id": "s",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "summary", "value": "x"}]},
    },
    {"id": "mid", "type": "publish", "config": {}},
    {
        "id": "t",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "tag", "value": "y"}]},
    },
]


def test_what_a_run_changed_is_walked_one_index_probe_per_entity(product_type):
    """A revert's batches and the admin's "changed since" read the run's revisions one index
    probe per entity (however many revisions each has, whatever other runs wrote): a
    `DISTINCT` over the run's revisions was a hash of all of them, for every batch."""
    steps = TWO_COMMITS
    ids = sorted(make_entities(product_type, 40))
    run = start_run(make_workflow(product_type, steps), ids)
    run_inline(run.pk)
    other = start_run(make_workflow(product_type, steps), ids)  # later: all changed since
    run_inline(other.pk)
    assert EntityRevision.objects.filter(run_id=run.pk).count() == 80
    assert EntityRevision.objects.count() == 160  # half of them other than the run's

    sql, params = run_changed_batch(run.pk, ids[9], 10)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        assert [row[0] for row in cursor.fetchall()] == ids[10:20]
    assert _revision_rows_read(sql, params) <= 10 + 1

    entity_update(entity_id=ids[0], data={"price": 1})  # changed since `other` too
    with CaptureQueriesContext(connection) as statements:
        assert run_changed_counts(run.pk) == (40, 40)
        assert run_changed_counts(other.pk) == (40, 1)
    assert len(statements) == 2
    counted = statements[1]["sql"]  # as sent, its values in it
    assert "WITH RECURSIVE walk" in counted
    # Per entity: its probe in the walk and the revision of its current version.
    assert _revision_rows_read(counted, []) <= 2 * 40 + 1


def test_entities_written_during_a_run_are_counted_reading_the_run_s_revisions_alone(
    product_type,
):
    """The admin's "written between two of the run's commits": per entity, its probe in the
    walk and the run's own revisions of it, whatever else wrote it."""
    from tests.jobs.test_reverts import _run_edited_while_it_waited

    run, entity_id = _run_edited_while_it_waited(product_type, {"summary": "by a person"})
    assert run_changed_during_count(run.pk) == 1
    entity_update(entity_id=entity_id, data={"price": 3})  # changed since: not during
    assert run_changed_during_count(run.pk) == 0
    ids = sorted(make_entities(product_type, 40))
    steps = TWO_COMMITS
    run = start_run(make_workflow(product_type, steps), ids)
    run_inline(run.pk)
    for entity_id in ids[:5]:  # edits after the run, many revisions: not read
        for price in range(10):
            entity_update(entity_id=entity_id, data={"price": price})
    with CaptureQueriesContext(connection) as statements:
        assert run_changed_during_count(run.pk) == 0
        assert run_changed_during_count(run.pk, limit=10) == 0
    assert _revision_rows_read(statements[0]["sql"], []) <= 40 + 2 * 40 + 1


def test_a_revert_s_chunk_reads_the_run_s_revisions_of_its_entities_alone():
    """One index probe per entity of the chunk, whatever the statistics say. Planned on
    statistics taken before the run (other runs' revisions only), the run's condition alone
    was the index's and the chunk's 1,000 ids a filter: every chunk read all the run's
    revisions (0.43 s a chunk for a run of 1,000,000, whose revert took time as the square
    of its size). Revisions written directly, as many as a run makes."""
    revision = "INSERT INTO entities_entityrevision (entity_id, version, created_at, source, "
    revision += "run_id, step_id, user_id, api_key_id, changes) SELECT 'ent_' || lpad(n::text, "
    revision += "26, '0'), %s, now(), 'run', %s, 'pub', '', '', '[]' FROM generate_series(1, %s) n"
    with connection.cursor() as cursor:
        for other in range(20):  # the runs before: 10,000 revisions each
            cursor.execute(revision, [10 + other, f"run_{other:026d}", 10_000])
        cursor.execute("ANALYZE entities_entityrevision")
        cursor.execute(revision, [2, "run_reverted", 50_000])
    chunk = [f"ent_{n:026d}" for n in range(20_001, 21_001)]
    with CaptureQueriesContext(connection) as statements:
        made = run_revisions_of("run_reverted", chunk)
    assert [(pk, version) for pk, version, _ in made] == [(pk, 2) for pk in chunk]
    assert made[0][2] == []
    [read] = statements
    assert _revision_rows_read(read["sql"], []) == len(chunk)  # not the run's 50,000


def test_a_change_of_a_value_s_json_type_alone_is_a_change(api, product_type):
    """`true` to `1` and `1` to `1.0` are equal to Python's `==`, not in JSON: the revision
    records them, so the version before rebuilds and restores as it was."""
    entity_id = _create(api, product_type, {"title": "Lamp", "flag": True, "ratio": 1})
    response = api.patch(f"/api/v1/entities/{entity_id}", {"data": {"flag": 1, "ratio": 1.0}})
    assert response.json()["version"] == 2
    assert response.json()["data"]["flag"] == 1 and response.json()["data"]["flag"] is not True
    [newest, _] = api.get(f"/api/v1/entities/{entity_id}/revisions").json()
    assert newest["changes"] == [
        {"field": "data.flag", "before": True, "after": 1},
        {"field": "data.ratio", "before": 1, "after": 1.0},
    ]
    at_1 = api.get(f"/api/v1/entities/{entity_id}/revisions/1").json()["data"]
    assert at_1["flag"] is True and type(at_1["ratio"]) is int
    restored = api.post(f"/api/v1/entities/{entity_id}/restore", {"version": 1}).json()["data"]
    assert restored["flag"] is True and type(restored["ratio"]) is int
    assert Entity.objects.get(pk=entity_id).data["flag"] is True


def test_a_run_that_changes_only_a_value_s_type_commits_it(product_type):
    [entity_id] = make_entities(product_type, 1, flag=True)
    workflow = make_workflow(
        product_type,
        [
            {
                "id": "one",
                "type": "transform",
                "config": {"operations": [{"op": "set", "field": "flag", "value": 1}]},
            }
        ],
    )
    run = start_run(workflow, [entity_id])
    run_inline(run.pk)
    entity = Entity.objects.get(pk=entity_id)
    assert entity.version == 2 and entity.data["flag"] == 1 and entity.data["flag"] is not True
    revision = EntityRevision.objects.get(entity_id=entity_id, version=2)
    assert revision.changes == [{"field": "data.flag", "before": True, "after": 1}]


def _run_committing_twice(product_type) -> str:
    """An entity a run committed twice: v2 at its publish step, v3 at its end."""
    [entity_id] = make_entities(product_type, 1)
    run = start_run(make_workflow(product_type, PUBLISH_BETWEEN), [entity_id])
    run_inline(run.pk)
    assert Entity.objects.get(pk=entity_id).version == 3
    return entity_id


def _age(entity_id: str, days_by_version: dict[int, int]) -> None:
    now = timezone.now()
    for version, days in days_by_version.items():
        EntityRevision.objects.filter(entity_id=entity_id, version=version).update(
            created_at=now - datetime.timedelta(days=days)
        )


def test_retention_keeps_a_run_s_older_revision_while_a_newer_one_of_the_run_is_kept(
    product_type, settings
):
    """The run's publish (v2) is older than the cutoff, its final commit (v3) is not (the
    entity waited between): pruning v2 alone would leave a revert half the run to undo."""
    settings.ENTITY_REVISIONS_KEEP_DAYS = 30
    recent = _run_committing_twice(product_type)
    _age(recent, {1: 40, 2: 31, 3: 29})
    newest = _run_committing_twice(product_type)  # v3 kept as the newest, v2 with it
    _age(newest, {1: 40, 2: 35, 3: 33})
    assert revisions_prune(now=timezone.now(), limit=100) == 2
    kept = EntityRevision.objects.values_list("entity_id", "version")
    assert sorted(kept) == sorted([(recent, 2), (recent, 3), (newest, 2), (newest, 3)])


def test_retention_prunes_a_run_s_revisions_of_an_entity_in_one_batch(product_type, settings):
    settings.ENTITY_REVISIONS_KEEP_DAYS = 30
    entity_id = _run_committing_twice(product_type)
    entity_update(entity_id=entity_id, data={"price": 7})  # v4, recent
    _age(entity_id, {1: 40, 2: 35, 3: 33})
    # A batch of two (v1, v2) takes v3 with it: the run's revisions never part.
    assert revisions_prune(now=timezone.now(), limit=2) == 3
    assert list(EntityRevision.objects.values_list("version", flat=True)) == [4]


def test_an_old_version_of_a_large_field_edited_often_is_rebuilt_in_bounded_memory(product_type):
    """Rebuilding version 1 undoes every newer revision: they are read a few at a time, not
    all at once (100 revisions of a 200 KB field, 40 MB of their values, peaked at 80 MB; a
    few thousand were gigabytes, in a web request)."""
    import tracemalloc

    from entities.selectors import entity_version

    [entity_id] = make_entities(product_type, 1, notes="first")
    for i in range(100):
        entity_update(entity_id=entity_id, data={"notes": f"{i:03d}" + "x" * 200_000})
    entity = Entity.objects.get(pk=entity_id)
    tracemalloc.start()
    try:
        _, state = entity_version(entity=entity, version=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert state.data["notes"] == "first"
    assert peak < 12_000_000, peak  # REBUILD_FETCH_ROWS revisions, parsed, and their text


def test_restoring_what_the_entity_already_is_writes_nothing(api, product_type):
    """Restoring a version a second time (or the current one) changes nothing: the entity is
    answered as it is, with no new version, no empty revision and no trigger's event."""
    from entities.models import EntityEvent

    entity_id = _create(api, product_type, {"title": "Lamp", "price": 3})
    api.patch(f"/api/v1/entities/{entity_id}", {"data": {"price": 4}})
    url = f"/api/v1/entities/{entity_id}/restore"
    assert api.post(url, {"version": 1}).json()["version"] == 3
    events = EntityEvent.objects.count()
    for version in (1, 3):
        response = api.post(url, {"version": version})
        assert response.status_code == 200, response.content
        assert (response.json()["version"], response.json()["data"]["price"]) == (3, 3)
    assert EntityRevision.objects.filter(entity_id=entity_id).count() == 3
    assert EntityEvent.objects.count() == events


def test_restoring_a_published_version_keeps_the_publication_time_it_has_to_the_microsecond(
    api, product_type
):
    """The revisions keep publishedAt in ms; the entity's own time has microseconds. A
    version published at the same time gives it back as stored: no publishedAt change whose
    before and after read the same."""
    entity_id = _create(api, product_type, {"title": "Lamp", "price": 3})
    published = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC)
    Entity.objects.filter(pk=entity_id).update(status="published", published_at=published)
    EntityRevision.objects.filter(entity_id=entity_id).update(
        changes=[
            {"field": "data.price", "after": 3},
            {"field": "data.title", "after": "Lamp"},
            {"field": "status", "after": "published"},
            {"field": "publishedAt", "before": None, "after": to_millis(published)},
        ]
    )
    api.patch(f"/api/v1/entities/{entity_id}", {"data": {"price": 4}})
    response = api.post(f"/api/v1/entities/{entity_id}/restore", {"version": 1})
    assert response.status_code == 200, response.content
    [restore] = api.get(f"/api/v1/entities/{entity_id}/revisions?limit=1").json()
    assert restore["changes"] == [{"field": "data.price", "before": 4, "after": 3}]
    assert Entity.objects.get(pk=entity_id).published_at == published


def test_a_version_read_while_the_entity_is_written_is_rebuilt_not_called_pruned(
    api, product_type, monkeypatch
):
    """The entity is read, then its revisions: a write landing between (a run committing it)
    added a revision newer than the entity as read, and the rebuild took that for a gap,
    answering 409 `revision_not_kept` ("newer revisions were pruned") when none was."""
    from entities import views

    entity_id = _create(api, product_type, {"title": "Lamp", "price": 3})
    api.patch(f"/api/v1/entities/{entity_id}", {"data": {"price": 4}})
    rebuild = views.selectors.entity_version

    def written_meanwhile(**kwargs):
        entity_update(entity_id=entity_id, data={"price": 5})
        return rebuild(**kwargs)

    monkeypatch.setattr(views.selectors, "entity_version", written_meanwhile)
    response = api.get(f"/api/v1/entities/{entity_id}/revisions/1")
    assert response.status_code == 200, response.content
    assert response.json()["data"] == {"title": "Lamp", "price": 3}


def test_a_revision_is_dated_as_the_write_that_made_its_version(api, product_type, monkeypatch):
    """A revision read `timezone.now()` again after its entity's save: a PATCH's version 2
    said `updatedAt` ...445 on the entity and `createdAt` ...446 in its history (on a clock
    that moves between two reads, as the one below does by a second each)."""
    clock = iter(range(10_000))
    start = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: start + datetime.timedelta(seconds=next(clock)))
    entity_id = _create(api, product_type, {"title": "Lamp", "price": 3})
    created = api.get(f"/api/v1/entities/{entity_id}").json()["createdAt"]
    api.patch(f"/api/v1/entities/{entity_id}", {"data": {"price": 4}})
    patched = api.get(f"/api/v1/entities/{entity_id}").json()["updatedAt"]
    restored = api.post(f"/api/v1/entities/{entity_id}/restore", {"version": 1}).json()
    history = {
        revision["version"]: revision["createdAt"]
        for revision in api.get(f"/api/v1/entities/{entity_id}/revisions").json()
    }
    assert history == {1: created, 2: patched, 3: restored["updatedAt"]}
