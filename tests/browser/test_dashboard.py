"""The dashboard in a real headless Chromium (Debian's chromium + chromedriver), against
a real gateway process over a store with tagged papers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.integration.test_store import tagged
from tests.integration.test_topics import TOPICS
from topictag.bus.embedded import free_port
from topictag.store import open_store
from topictag.topics.index import TopicIndex

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _browser_missing() -> str | None:
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return None
    return "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"


@contextmanager
def running_gateway(store_url: str):
    """A real `topictag gateway` process over ``store_url``; yields its URL."""
    port = free_port()
    env = os.environ | {"TOPICTAG_STORE_URL": store_url}
    env.pop("TOPICTAG_KAFKA_BOOTSTRAP", None)
    proc = subprocess.Popen([sys.executable, "-m", "topictag", "gateway", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def gateway_url(tmp_path):
    store_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = open_store(store_url)
    batch = [tagged(i, t) for i, t in enumerate(TOPICS * 3)]
    store.papers.save_tagged(batch)
    TopicIndex(store).add(batch)
    store.close()
    with running_gateway(store_url) as url:
        yield url


@pytest.fixture
def browser(tmp_path):
    missing = _browser_missing()
    if missing:
        if os.environ.get("TOPICTAG_TEST_REQUIRE_BROWSER"):
            pytest.fail(missing)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chrome'}", "--window-size=1400,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(10)
    yield driver
    driver.quit()


def test_dashboard_shows_stream_chart_search_and_clusters(gateway_url, browser):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.get(gateway_url + "/")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#stream li")) >= 10)
    assert "Federated Learning" in browser.find_element(By.ID, "stream").text
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#trend-chart polyline"))
    # The panels load in parallel: the counts may come after the chart.
    wait.until(lambda d: "papers tagged" in d.find_element(By.ID, "counts").text)
    assert "21 papers tagged" in browser.find_element(By.ID, "counts").text
    assert browser.find_element(By.ID, "empty").get_attribute("hidden") is not None

    browser.find_element(By.ID, "q").send_keys("outliers in sensor signals over time")
    browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
    # The first search loads the embedding model and builds the index: on 2 cores shared with
    # the rest of the suite that once took over 20 s (a fresh-clone CI run, 2026-11-30).
    WebDriverWait(browser, 90).until(EC.visibility_of_element_located((By.ID, "results")))
    first = browser.find_element(By.CSS_SELECTOR, "#results-list li .topic").text
    assert "Anomaly" in first

    def click_cluster(d) -> bool:
        # The page re-renders the cluster list as it polls: an item found just before a
        # refresh is gone by the click, and the next one is clicked instead (as a person would).
        try:
            d.find_element(By.XPATH, "//ol[@id='clusters']/li[contains(., 'Graph Neural Networks')]").click()
            return True
        except StaleElementReferenceException:
            return False

    wait.until(click_cluster)
    wait.until(lambda d: "Cluster: Graph Neural Networks" in d.find_element(By.ID, "results-title").text)
    topics = {e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results-list li .topic")}
    assert topics == {"Graph Neural Networks for Molecules"}

    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


def test_empty_store_says_so(tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    store_url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    open_store(store_url).close()
    with running_gateway(store_url) as url:
        browser.get(url + "/")
        WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "empty").is_displayed())
        assert "No papers yet" in browser.find_element(By.ID, "empty").text
