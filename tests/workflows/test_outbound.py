import pytest

from workflows.outbound import post_json, resolve_checked
from workflows.steps.runtime import StepError


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8000/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",  # 127.0.0.1 as a decimal number
        "http://0177.0.0.1/",  # octal
        "http://0x7f.1/",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[fe80::1]/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",  # shared address space
        "http://0.0.0.0/",
        "ftp://example.com/",
        "http:///nohost",
    ],
)
def test_internal_and_odd_urls_are_refused(url, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    with pytest.raises(StepError, match="Refused"):
        resolve_checked(url)


def test_allowed_hosts_open_an_exception(settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    assert resolve_checked("http://127.0.0.1:9/") == ("127.0.0.1", "127.0.0.1")
    settings.OUTBOUND_ALLOWED_HOSTS = ["10.0.0.0/8"]
    assert resolve_checked("http://10.1.2.3/")[1] == "10.1.2.3"


def test_a_redirect_to_the_metadata_address_is_refused(receiver, allow_loopback):
    receiver.redirect_to = "http://169.254.169.254/latest/meta-data/"
    with pytest.raises(StepError, match=r"169\.254\.169\.254"):
        post_json(receiver.url, b"{}")
    assert len(receiver.requests) == 1
