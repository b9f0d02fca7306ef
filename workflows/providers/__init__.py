"""LLM providers behind one interface; `provider_get(name)` returns the configured one."""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from workflows.providers.base import Generation, GenerationRequest, Provider
from workflows.providers.local import LocalProvider
from workflows.providers.network import AnthropicProvider, OpenAIProvider

# The names are declared once, in settings (AI_PROVIDERS: what AI_PROVIDER may be); each
# is bound to its class here, and the `ai_generate` step's `provider` enum reads this.
PROVIDERS: dict[str, type[Provider]] = {
    cls.name: cls for cls in (LocalProvider, OpenAIProvider, AnthropicProvider)
}
if list(PROVIDERS) != list(settings.AI_PROVIDERS):
    raise ImproperlyConfigured(
        f"AI_PROVIDERS {settings.AI_PROVIDERS} and the provider classes {list(PROVIDERS)} differ."
    )
_instances: dict[str, Provider] = {}


def provider_get(name: str) -> Provider:
    if name not in PROVIDERS:
        raise ImproperlyConfigured(f"Unknown AI provider {name!r}.")
    if name not in _instances:
        _instances[name] = PROVIDERS[name]()
    return _instances[name]


__all__ = ["PROVIDERS", "Generation", "GenerationRequest", "Provider", "provider_get"]
