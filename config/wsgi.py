import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
application = get_wsgi_application()

# Set-up a first request would otherwise pay for, done as the web worker starts: the query
# parameters each endpoint declares (read from the OpenAPI schema).
from config.api.query import declared_query_parameters  # noqa: E402

declared_query_parameters()
