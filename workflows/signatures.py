"""Standard Webhooks' headers on what the product POSTs: `notify` webhooks and run
callbacks. A receiver verifies them with any Standard Webhooks library (`standardwebhooks`'
`Webhook(secret).verify(body, headers)`), and drops a message it has seen by `webhook-id`."""

import base64
import binascii
import hashlib
import hmac
import time

WHSEC_PREFIX = "whsec_"
SECRET_MAX_LENGTH = 500


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret, as Standard Webhooks reads it: after `whsec_`, base64;
    any other string, its UTF-8 bytes. ValueError when a `whsec_` secret is not base64."""
    if not secret.startswith(WHSEC_PREFIX):
        return secret.encode()
    encoded = secret[len(WHSEC_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("A secret starting with `whsec_` must continue in base64.") from exc
    if not key:
        raise ValueError("A secret starting with `whsec_` must continue in base64.")
    return key


def webhook_headers(message_id: str, body: bytes, secret: str = "") -> dict:
    """`webhook-id` and `webhook-timestamp`, and with a secret `webhook-signature`:
    `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. `message_id` is the same for every
    delivery of one message (a retry, a redelivered task)."""
    timestamp = str(int(time.time()))
    headers = {"webhook-id": message_id, "webhook-timestamp": timestamp}
    if secret:
        signed = f"{message_id}.{timestamp}.".encode() + body
        digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
        headers["webhook-signature"] = "v1," + base64.b64encode(digest).decode()
    return headers
