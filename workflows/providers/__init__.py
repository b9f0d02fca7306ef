"""LLM providers behind one interface; `provider_get(name)` returns the configured one."""

from django.core.exceptions import ImproperlyConfigured

from workflows.providers.base import Generation, GenerationRequest, Provider
from workflows.providers.local import LocalProvider
from workflows.providers.network import AnthropicProvider, OpenAIProvider

PROVIDERS: dict[str, type[Provider]] = {
    "local": LocalProvider,
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
}
_instances: dict[str, Provider] = {}


def provider_get(name: str) -> Provider:
    if name not in PROVIDERS:
        raise ImproperlyConfigured(f"Unknown AI provider {name!r}.")
    if name not in _instances:
        _instances[name] = PROVIDERS[name]()
    return _instances[name]


__all__ = ["Generation", "GenerationRequest", "Provider", "provider_get"]
