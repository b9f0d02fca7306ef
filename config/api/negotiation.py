"""Content negotiation: DRF's, with `?format=` read as strictly as any query parameter."""

from rest_framework.negotiation import DefaultContentNegotiation

from config.api.errors import FieldError, InvalidInput
from config.api.query import repeated_parameter


class ContentNegotiation(DefaultContentNegotiation):
    """`?format=` given more than once is a 400 `repeated_parameter` (DRF read the last one,
    and answered 404 when it named a format the first did not); a format the endpoint does
    not answer in (`?format=api`, `?format=xml`, empty) is a 400 naming the ones it does,
    instead of DRF's bare 404. Checked before the key, as DRF negotiates before it
    authenticates: the answer is JSON all the same (errors are rendered with the endpoint's
    first renderer, JSON on every API endpoint). The `Accept` header is DRF's (a 406)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        name = self.settings.URL_FORMAT_OVERRIDE
        values = request.query_params.getlist(name) if name else []
        if len(values) > 1:
            raise InvalidInput(
                f"Repeated query parameter: `{name}`",
                details=[repeated_parameter(name, values)],
            )
        formats = list(dict.fromkeys(renderer.format for renderer in renderers))
        if values and not format_suffix and values[0] not in formats:
            listed = ", ".join(f"`{each}`" for each in formats)
            raise InvalidInput(
                f"Unknown format {values[0]!r}.",
                details=[
                    FieldError(name, f"This endpoint answers in {listed} only.", "invalid_choice")
                ],
            )
        return super().select_renderer(request, renderers, format_suffix)
