"""HTTPS behind a proxy, HSTS and the Content-Security-Policy (README, Running in production:
with the settings documented there, `manage.py check --deploy` finds nothing)."""

from csp.constants import NONCE, NONE, SELF

from config.env import env_bool, env_int, env_str

# Strict-Transport-Security: off by default, since browsers remember it for this long; turn it
# on once the site is served over HTTPS only.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Plain HTTP is redirected to HTTPS, except the probes a load balancer or Prometheus sends
# to the process directly.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]


def _proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """The header a proxy in front sets to `https` for requests that reached it over HTTPS
    (`X-Forwarded-Proto`), as Django's META key; trust it only behind a proxy that sets it."""
    if not name:
        return None
    return ("HTTP_" + name.strip().upper().replace("-", "_"), "https")


SECURE_PROXY_SSL_HEADER = _proxy_ssl_header(env_str("SECURE_PROXY_SSL_HEADER", ""))

# The admin's and /api/docs' pages load scripts, styles and images from this origin only; an
# inline script runs only with the response's nonce (the admin's own templates carry it).
# Inline style attributes stay allowed: the admin's templates use them, and a style cannot run
# code. Everything else (the API's JSON) gets the same header, which a browser ignores there.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
