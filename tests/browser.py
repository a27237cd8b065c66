"""A real browser for the console tests: Playwright driving Debian's chromium package
(/usr/bin/chromium, apt package `chromium` in the Makefile's APT_PKGS); nothing is downloaded
(never `playwright install`)."""

from __future__ import annotations

import contextlib
import tempfile
from typing import Any, AsyncIterator

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[Any]:
    """A fresh browser context (its own empty profile) with one page."""
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory(prefix="edge-chromium-") as profile:
        async with async_playwright() as pw:
            ctx = await pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                              args=FLAGS, viewport={"width": 412, "height": 900})
            ctx.set_default_timeout(10_000)
            try:
                yield ctx
            finally:
                await ctx.close()


async def log_in(page: Any, base_url: str, password: str, user: str = "admin") -> None:
    await page.goto(base_url + "/")
    assert "/login" in page.url  # no session: the console sends the browser to its login page
    await page.fill("input[name=user]", user)
    await page.fill("input[name=password]", password)
    await page.click("form button")
    await page.wait_for_url(base_url + "/")
