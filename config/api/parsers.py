from rest_framework import parsers

from config.api.errors import InvalidInput
from config.api.storable import unstorable


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing a body with text the database cannot store (a 400 that
    names the field, instead of a failed write)."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        problem = unstorable(data)
        if problem:
            raise InvalidInput(f"{problem.field}: {problem.message}", details=[problem])
        return data
