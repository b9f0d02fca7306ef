"""Form fields of the admin that hold the API's bounds on what comes in."""

import json

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

from config.api.parsers import depth_problem
from config.api.storable import unstorable


class BoundedJSONField(forms.JSONField):
    """Django's JSON form field, refusing what the API's parser refuses (config/api/parsers.py)
    as a form error: JSON nested deeper than MAX_JSON_DEPTH, checked before the decoder
    recurses into it (a RecursionError, a 500, when redisplayed too), and text the database
    cannot store (`\\u0000`, an unpaired surrogate), named by its path."""

    def to_python(self, value):
        if isinstance(value, str) and (problem := depth_problem(value)):
            raise ValidationError(problem, code="too_deep")
        converted = super().to_python(value)
        found = unstorable(converted)
        if found:
            where = "" if found.field == "body" else f"{found.field}: "
            raise ValidationError(where + found.message, code="unstorable")
        return converted

    def prepare_value(self, value):
        """Indented, so a person reads nested data (Django's is one line)."""
        if isinstance(value, InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2, cls=self.encoder)

    def bound_data(self, data, initial):
        if isinstance(data, str) and depth_problem(data):
            return InvalidJSONInput(data)  # shown again as typed, never decoded
        return super().bound_data(data, initial)
