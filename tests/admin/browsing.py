"""Staff in a real headless Chromium (Debian's, driven by Playwright; the `browser` fixture is
in conftest.py) against a live server: a logged-in page, and what every admin page must be
(no sideways scroll, no JavaScript error, no Python repr)."""

import os
import re
import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PASSWORD = "pw-for-browser-1"
# How long a browser test waits for an element or a page. Generous: a waiting locator
# returns as soon as its element appears, and four test processes on two cores (with a
# real worker each, the long tests all started first) can stall a page for many seconds.
PAGE_TIMEOUT_MS = 60_000

# A Python repr in a value staff read: a dict's `{'key': `, a list of them, or a bare
# True/False/None where a value is shown (JSON says true/false/null, the admin an icon or "-").
PYTHON_REPR = re.compile(r"\{'[^'\n]{0,80}': |\[\{'|': (True|False|None)\b|^(True|False|None)$")


def require_chromium() -> None:
    if CHROMIUM is None:  # .ci/run installs it; say so plainly anywhere else
        pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


class Watched:
    """A logged-in page whose JavaScript errors (uncaught, or logged to the console) are kept."""

    def __init__(self, page):
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on(
            "console",
            lambda msg: msg.type == "error" and self.errors.append(f"{page.url}: {msg.text}"),
        )


def staff_page(browser, live_server, django_user_model, width: int = 1280) -> Watched:
    django_user_model.objects.create_superuser("staff", "s@example.com", PASSWORD)
    viewport = {"width": width, "height": 900}
    context = browser.new_context(base_url=live_server.url, viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    watched = Watched(page)
    page.goto("/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    return watched


def overflow(page) -> int:
    """How many pixels the page scrolls sideways (0 when it fits)."""
    return page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")


def inner_overflows(page) -> list[str]:
    """The boxes in the content that scroll sideways on their own (a steps table, a list
    wider than its box), each with how many pixels it hides: none should at 1280 px. A
    select's options are left out: a list box cuts a long option as the browser does."""
    return page.evaluate(
        """() => [...document.querySelectorAll("#content *:not(select)")]
          .filter(box => ["auto", "scroll"].includes(getComputedStyle(box).overflowX))
          .filter(box => box.scrollWidth > box.clientWidth + 1)
          .map(box => `${box.tagName.toLowerCase()}${box.id ? "#" + box.id : ""}`
            + `${box.closest("[id]") ? " in #" + box.closest("[id]").id : ""}`
            + `: ${box.scrollWidth - box.clientWidth} px`)"""
    )


def python_reprs(page) -> list[str]:
    """The values shown as Python reprs: data cells, read-only fields, preformatted values."""
    texts = page.eval_on_selector_all(
        "#content td, #content th, #content .readonly, #content pre, #content dd",
        "nodes => nodes.map(n => n.innerText.trim())",
    )
    return [text[:120] for text in texts if PYTHON_REPR.search(text)]


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
