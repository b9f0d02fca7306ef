"""An entity's page lists its history bounded: each value cut to what a cell shows, saying so
and linking to the revision shown alone and whole, and the changes past the page's budget
left out (counted), however large or many the entity's fields."""

import re

import pytest
from django.contrib.admin.utils import quote

from config.api.templatetags.admin_values import VALUE_CHARS_SHOWN
from entities.admin import REVISIONS_SHOWN
from entities.services import entity_update
from tests.factories import make_entities, make_entity_type
from tests.plans import rows_read

pytestmark = pytest.mark.django_db

PAGE_BYTES = 2_000_000


def _page(admin_client, entity_id, query=""):
    page = admin_client.get(f"/admin/entities/entity/{quote(entity_id)}/change/{query}")
    assert page.status_code == 200
    return page.content.decode()


def test_a_large_field_edited_fifty_times_is_cut_and_the_page_stays_small(admin_client):
    [entity_id] = make_entities(make_entity_type(schema=None), 1)
    big = [0] * 100_000  # about 200 KB as JSON; each value shown pretty-printed is 400 KB
    for i in range(REVISIONS_SHOWN):
        entity_update(entity_id=entity_id, data={"blob": [i + 1, *big[1:]]})
    html = _page(admin_client, entity_id)
    assert len(html.encode()) < PAGE_BYTES
    assert html.count('<tr class="revision"') == REVISIONS_SHOWN
    assert html.count('class="revision-cut"') == REVISIONS_SHOWN
    assert f'href="?revision={REVISIONS_SHOWN + 1}" class="revision-cut"' in html
    # Read alone, the revision's values are whole.
    alone = _page(admin_client, entity_id, f"?revision={REVISIONS_SHOWN + 1}")
    assert alone.count('<tr class="revision"') == 1
    assert alone.count("\n 0,") == 2 * (100_000 - 2)
    assert 'class="revision-cut"' not in alone


def test_a_value_a_cell_holds_is_shown_whole_with_no_cut_said(admin_client):
    [entity_id] = make_entities(make_entity_type(schema=None), 1)
    fits = "x" * (VALUE_CHARS_SHOWN - 2)  # with its JSON quotes, what a cell shows
    entity_update(entity_id=entity_id, data={"title": fits})
    html = _page(admin_client, entity_id)
    assert f"&quot;{fits}&quot;" in html
    assert 'class="revision-cut"' not in html and 'class="revision-hidden"' not in html
    entity_update(entity_id=entity_id, data={"title": fits + "y"})
    html = _page(admin_client, entity_id)
    assert f"&quot;{fits}y…" in html and html.count('class="revision-cut"') == 1


def test_many_fields_edited_often_stop_at_the_page_budget_and_say_how_many_are_left(
    admin_client,
):
    [entity_id] = make_entities(make_entity_type(schema=None), 1)
    fields = 5_000
    for i in range(REVISIONS_SHOWN):
        entity_update(entity_id=entity_id, data={f"f{n}": i for n in range(fields)})
    html = _page(admin_client, entity_id)
    assert len(html.encode()) < PAGE_BYTES
    # Every revision is still listed (with its restore button); its changes past the budget
    # are counted and linked to the revision alone.
    assert html.count('<tr class="revision"') == REVISIONS_SHOWN
    hidden = [int(n) for n in re.findall(r'class="revision-hidden">(\d+)', html)]
    assert hidden and all(0 < n <= fields for n in hidden)
    assert hidden.count(fields) == len(hidden) - 1  # one revision cut part-way
    alone = _page(admin_client, entity_id, "?revision=2")
    assert alone.count("<tr><th>data.f") == fields
    assert 'class="revision-hidden"' not in alone


@pytest.mark.parametrize("revision", ["abc", "-1", "9" * 30, "٣"])
def test_a_revision_that_is_not_a_version_shows_the_history_as_usual(admin_client, revision):
    [entity_id] = make_entities(make_entity_type(schema=None), 1)
    entity_update(entity_id=entity_id, data={"title": "Renamed"})
    html = _page(admin_client, entity_id, f"?revision={revision}")
    assert html.count('<tr class="revision"') == 2


def test_the_revisions_past_the_newest_fifty_are_reached_page_by_page_and_restored(
    admin_client,
):
    """An entity edited more than the page lists: its older revisions are a link away (not a
    URL to guess), each with its restore button."""
    [entity_id] = make_entities(make_entity_type(schema=None), 1)
    for i in range(REVISIONS_SHOWN + 9):
        entity_update(entity_id=entity_id, data={"n": i})
    newest = REVISIONS_SHOWN + 10
    html = _page(admin_client, entity_id)
    versions = [int(v) for v in re.findall(r'<tr class="revision" data-version="(\d+)"', html)]
    assert versions == list(range(newest, 10, -1))
    assert 'href="?before=11" id="entity-history-older"' in html
    older = _page(admin_client, entity_id, "?before=11")
    versions = [int(v) for v in re.findall(r'<tr class="revision" data-version="(\d+)"', older)]
    assert versions == list(range(10, 0, -1))
    assert 'id="restore-1"' in older and 'id="entity-history-older"' not in older
    assert 'href="?" id="entity-history-all"' in older
    response = admin_client.post(f"/admin/entities/entity/{quote(entity_id)}/restore/1/")
    assert response.status_code == 302
    assert _page(admin_client, entity_id).count('data-version="61"') == 1


@pytest.mark.parametrize("before", ["abc", "-1", "0", "9" * 30, "٣"])
def test_a_page_of_older_revisions_that_is_not_a_version_shows_the_newest(admin_client, before):
    [entity_id] = make_entities(make_entity_type(schema=None), 1)
    entity_update(entity_id=entity_id, data={"title": "Renamed"})
    html = _page(admin_client, entity_id, f"?before={before}")
    assert html.count('<tr class="revision"') == 2


def test_restoring_a_version_the_entity_already_has_says_so_and_writes_nothing(admin_client):
    [entity_id] = make_entities(make_entity_type(schema=None), 1)
    entity_update(entity_id=entity_id, data={"n": 1})
    url = f"/admin/entities/entity/{quote(entity_id)}/restore/1/"
    admin_client.post(url)
    response = admin_client.post(url, follow=True)
    html = response.content.decode()
    assert "The entity is as version 1 was already: nothing to restore." in html
    assert html.count('<tr class="revision"') == 3


def test_a_page_of_history_reads_its_rows_alone_however_many_revisions_there_are(admin_client):
    """Ordered by id, the history was read by walking the table's id index back from the
    newest revision of any entity until 51 of this one's were found (every revision made
    since this entity's last: the whole table for an entity edited long ago), or by reading
    and sorting all of the entity's own: as the API's pages, it is read by version."""

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from entities.models import EntityRevision

    entity_type = make_entity_type(schema=None)
    [entity_id] = make_entities(entity_type, 1)
    [other] = make_entities(entity_type, 1)
    EntityRevision.objects.bulk_create(
        EntityRevision(entity_id=eid, version=version, created_at=timezone.now(), changes=[])
        for eid in (entity_id, other)  # the other entity's revisions are the newer
        for version in range(2, 3001)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {EntityRevision._meta.db_table}")
    with CaptureQueriesContext(connection) as queries:
        html = _page(admin_client, entity_id)
    assert re.findall(r'data-version="(\d+)"', html)[:2] == ["3000", "2999"]
    [sql] = [
        q["sql"]
        for q in queries.captured_queries
        if EntityRevision._meta.db_table in q["sql"] and "LIMIT 51" in q["sql"]
    ]
    read = rows_read(sql, table=EntityRevision._meta.db_table)
    assert read <= 52


def test_restoring_needs_the_entity_permissions_and_tells_no_one_else_what_exists(
    staff_with, django_user_model
):
    """Staff without `view_entity` got a redirect for an entity that exists and a 404 for
    one that does not; staff who may view but not change entities had their POST quietly
    redirected. Both are refused, and nothing is written."""
    from django.contrib.auth.models import Permission

    from entities.models import Entity

    [entity_id] = make_entities(make_entity_type(schema=None), 1)
    entity_update(entity_id=entity_id, data={"n": 1})
    url = f"/admin/entities/entity/{quote(entity_id)}/restore/1/"
    client = staff_with("jobs.view_run")
    assert client.get(url).status_code == 403
    assert client.get("/admin/entities/entity/ent_nope/restore/1/").status_code == 403
    assert client.post(url).status_code == 403
    clerk = django_user_model.objects.get(username="clerk")
    clerk.user_permissions.add(
        Permission.objects.get(content_type__app_label="entities", codename="view_entity")
    )
    assert client.get(url).status_code == 302  # to the entity's page, which it may view
    assert client.post(url).status_code == 403
    assert Entity.objects.get(pk=entity_id).version == 2
