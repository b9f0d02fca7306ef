from django.core.exceptions import ImproperlyConfigured

from workflows.steps.base import StepType


class StepTypeRegistry:
    """The single list of step types: model choices, API validation, `/api/v1/step-types`,
    the OpenAPI schema and the admin reference all read it. Refuses duplicates and unknown
    names loudly."""

    def __init__(self):
        self._types: dict[str, StepType] = {}

    def register(self, cls: type[StepType]) -> type[StepType]:
        if not getattr(cls, "type", None):
            raise ImproperlyConfigured(f"Step type {cls.__name__} has no `type`.")
        if cls.type in self._types:
            raise ImproperlyConfigured(f"Step type {cls.type!r} is registered twice.")
        self._types[cls.type] = cls()
        return cls

    def get(self, type_name: str) -> StepType:
        try:
            return self._types[type_name]
        except KeyError:
            raise ImproperlyConfigured(f"Unknown step type {type_name!r}.") from None

    def __contains__(self, type_name: object) -> bool:
        # A name from a request may be any JSON value; an object or array is not hashable.
        return isinstance(type_name, str) and type_name in self._types

    def __iter__(self):
        return iter(self._types.values())

    def names(self) -> list[str]:
        return list(self._types)


registry = StepTypeRegistry()
register = registry.register
