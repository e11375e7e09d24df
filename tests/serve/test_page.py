"""The page in a real browser: headless Chromium from the system's packages, driven by
Playwright against a real `charlm serve --port 0` on a tiny run. CI installs Chromium
(Makefile: browser) and must run this; elsewhere it is skipped when there is no Chromium."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHARLM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# as root, offline: no sandbox, and none of Chromium's own connections (refused here)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update",
         "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium at {CHROMIUM}: CI must install it (make browser)")
        pytest.skip("no Chromium (apt-get install chromium, or set CHARLM_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def generated(page):
    """Click Generate, and the finished card of this generation (not the last one's)."""
    page.evaluate("document.querySelectorAll('#output article').forEach(e => e.dataset.old = 1)")
    page.click("#generate")
    new = "#output article.sample.done:not([data-old])"
    page.wait_for_selector(f"{new}, #error:not([hidden])")
    assert page.is_hidden("#error"), page.inner_text("#error")
    return page.query_selector(new)


def _active(url: str) -> int:
    return json.loads(urllib.request.urlopen(url + "api/status", timeout=5).read())["active"]


def test_write_stop_next_seed_history_and_errors(browser, live_server, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(live_server)
    page.wait_for_function("document.querySelectorAll('#run option').length >= 2")
    page.select_option("#run", "a")

    # a long free text: the text appears while it is written, then Stop ends it there too
    page.fill("#prefix", "分开")
    page.select_option("#shape", "free")
    page.fill("#lines", "0")
    page.click("summary")
    page.fill("#length", "4000")
    page.fill("#num_samples", "8")
    page.fill("#seed", "1")
    page.click("#generate")
    page.wait_for_function(
        "(document.querySelector('pre.streaming')?.textContent.length ?? 0) > 12"
    )
    assert page.is_enabled("#stop")
    page.click("#stop")
    page.wait_for_selector("text=stopped")
    page.wait_for_function("!document.querySelector('#generate').disabled")
    for _ in range(100):
        if _active(live_server) == 0:
            break
        page.wait_for_timeout(50)
    assert _active(live_server) == 0

    # 七言绝句: four lines of seven, each with its rhyme group; copies marked with their length
    page.fill("#length", "")
    page.fill("#num_samples", "1")
    page.fill("#max_copy", "0")
    page.select_option("#shape", "form:七言绝句")
    card = generated(page)
    lines = [x.strip() for x in card.query_selector(".text").inner_text().splitlines() if x.strip()]
    assert len(lines) == 4
    assert len(card.query_selector_all(".rhyme")) == 4
    assert "seed 1" in card.inner_text()

    # next seed: the same request, seed 2
    page.click("#next-seed")
    page.wait_for_selector("article.sample.done[data-seed='2']")

    # a tiny model of a repeated text copies it: the copies are marked with their length
    page.select_option("#shape", "free")
    page.fill("#lines", "0")
    page.fill("#length", "300")
    page.fill("#temperature", "0")
    card = generated(page)
    marks = card.query_selector_all("mark")
    assert marks, card.inner_text()
    assert all(int(m.get_attribute("data-length")) >= 8 for m in marks)
    assert "copied span" in card.inner_text()
    page.screenshot(path=str(tmp_path / "desktop.png"), full_page=True)

    # the history survives a reload
    page.reload()
    page.click("[data-tab=history]")
    page.wait_for_selector("#history li")
    assert len(page.query_selector_all("#history li")) >= 3
    entries = len(page.query_selector_all("#history li"))
    # two ticked: side by side; export is a JSON file of them all; delete drops one
    ticks = page.query_selector_all("#history .pick")
    ticks[0].check()
    ticks[1].check()
    page.click("#compare")
    assert len(page.query_selector_all("#compare-view article")) == 2
    with page.expect_download() as dl:
        page.click("#export")
    exported = json.loads(Path(dl.value.path()).read_text(encoding="utf-8"))
    assert len(exported) == entries and all("text" in e and "seed" in e for e in exported)
    page.click("#history li:first-child button.danger")
    page.wait_for_function(f"document.querySelectorAll('#history li').length == {entries - 1}")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: one column
    page.screenshot(path=str(tmp_path / "narrow.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the narrow layout scrolls sideways ({width} px)"

    # an error in the CLI's words, in the page
    page.click("[data-tab=write]")
    page.select_option("#shape", "free")
    page.fill("#prefix", "分开\u2603")
    page.click("#generate")
    page.wait_for_selector("#error:not([hidden])")
    assert "never saw" in page.inner_text("#error")
    page.close()


def test_scan_view(browser, live_server):
    page = browser.new_page()
    page.goto(live_server)
    page.click("[data-tab=scan]")
    page.fill("#scan-text", "床前明月光\n疑是地上霜\n举头望明月\n低头思故乡\n")
    page.click("#scan-form button")
    page.wait_for_selector("#scan-result table")
    text = page.inner_text("#scan-result")
    assert "scheme AAXA" in text and "平平平仄平" in text
    page.close()


def test_presets_and_keys(browser, live_server):
    page = browser.new_page()
    page.goto(live_server)
    page.wait_for_function("document.querySelectorAll('#run option').length >= 2")
    page.select_option("#run", "a")
    page.select_option("#preset", "Acrostic 春夏秋冬 (七言绝句)")
    assert page.input_value("#shape") == "form:七言绝句"
    assert page.input_value("#acrostic") == "春夏秋冬"
    page.select_option("#preset", "Free verse, 8 lines")  # a preset sets what it names only
    assert (page.input_value("#shape"), page.input_value("#acrostic")) == ("free", "")
    page.click("summary")  # the sampling fields
    page.fill("#temperature", "0.5")
    page.once("dialog", lambda d: d.accept("cooler"))
    page.click("#save-preset")
    page.reload()
    page.wait_for_function("document.querySelectorAll('#run option').length >= 2")
    page.click("summary")
    page.fill("#temperature", "1.1")
    page.select_option("#preset", "cooler")  # kept in the browser
    assert page.input_value("#temperature") == "0.5"
    page.click("#delete-preset")
    assert "cooler" not in page.inner_text("#preset")
    # Ctrl+Enter writes, Esc stops
    page.select_option("#run", "a")
    page.fill("#prefix", "分开")
    page.fill("#length", "4000")
    page.fill("#lines", "0")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("(document.querySelector('pre.streaming')?.textContent.length ?? 0) > 8")
    page.keyboard.press("Escape")
    page.wait_for_selector("text=stopped")
    page.close()
