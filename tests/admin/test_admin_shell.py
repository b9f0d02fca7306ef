"""The admin's shell: titled Workflows, the product's tables first, the libraries' unedited
tables gone, no "View site" to the API's 404, a favicon served as a static file."""

import re

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


def test_the_index_is_titled_workflows_and_leads_with_the_product(staff):
    html = staff.get("/admin/").content.decode()
    assert "<title>Workflows | Workflows</title>" in html
    assert '<div id="site-name"><a href="/admin/">Workflows</a></div>' in html
    assert "Django administration" not in html and "View site" not in html
    tables = re.findall(r'<th scope="row" id="[^"]+">\s*<a href="(/admin/[^"]+)/"', html)
    assert tables[:3] == [
        "/admin/workflows/workflow",
        "/admin/jobs/run",
        "/admin/jobs/review",
    ]
    # The jobs app's other tables by name: a kind of wait's (events), experiments, jobs.
    assert tables[3:6] == ["/admin/jobs/event", "/admin/jobs/experiment", "/admin/jobs/job"]
    assert tables.index("/admin/entities/entity") < tables.index("/admin/api/apikey")
    assert tables[-2:] == [
        "/admin/django_celery_beat/crontabschedule",
        "/admin/django_celery_beat/periodictask",
    ]


@pytest.mark.parametrize(
    "table",
    [
        "django_celery_results/taskresult",
        "django_celery_results/groupresult",
        "django_celery_beat/clockedschedule",
        "django_celery_beat/solarschedule",
        "django_celery_beat/intervalschedule",
    ],
)
def test_the_libraries_tables_nobody_edits_are_not_in_the_admin(staff, table):
    assert staff.get(f"/admin/{table}/").status_code == 404


def test_every_admin_page_names_its_favicon_and_the_file_is_a_static_one(staff):
    html = staff.get("/admin/jobs/run/").content.decode()
    [href] = re.findall(r'<link rel="icon" href="([^"]+)"', html)
    assert href == "/static/workflows/favicon.svg"
    assert finders.find("workflows/favicon.svg")
