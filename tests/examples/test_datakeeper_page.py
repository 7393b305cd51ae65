"""DataKeeper's cluster page in a real browser: Debian's headless chromium,
driven through Debian's chromedriver by Selenium (`make browser-deps` and the
test extra install them; without them the test skips and says which is missing).

The page is loaded from a replica; the leader node is killed with SIGKILL and
the page must name the new leader by itself, from the node's server-sent
events, without a reload. Then a key is put through the page's form (the
replica answers 307, the browser follows it to the leader) and must reach
every node.
"""

import importlib.util
import os
import time

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# The page hears of a change through the node's watch and event stream.
PAGE_LAG_S = 1.5


def _missing_browser():
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (the test extra: make venv)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (make browser-deps installs Debian's {package})"
    return None


@pytest.fixture
def browser(tmp_path):
    """A headless chromium session, quit at teardown, pass or fail."""
    reason = _missing_browser()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1200,900",
                     f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(argument)
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _text(driver, element_id):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text


def _rows(driver, table_id, attribute):
    """{data-<attribute>: [cell texts]} of a table's body rows."""
    return driver.execute_script(
        "const rows = document.getElementById(arguments[0]).tBodies[0].rows;"
        "return Array.from(rows, r => [r.dataset[arguments[1]],"
        "                              Array.from(r.cells, c => c.textContent)]);",
        table_id, attribute)


@pytest.mark.timeout(90)
def test_the_page_follows_a_failover_and_writes_through_its_form(
        nookeeper_ensemble, datakeeper, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    cluster = datakeeper(nookeeper_ensemble.hosts)
    leader = cluster.leader()
    viewer = cluster.replicas()[0]
    assert leader.put("before", "the failover").status == 200

    browser.get(viewer.url + "/")
    browser.execute_script("window.loadedOnce = true;")
    wait = WebDriverWait(browser, 10, poll_frequency=0.05)
    wait.until(lambda d: _text(d, "leader-name") == leader.name)
    wait.until(lambda d: sorted(name for name, _ in _rows(d, "nodes", "node"))
               == sorted(cluster.nodes))
    assert _text(browser, "this-node") == viewer.name
    assert _text(browser, "this-role") == "replica"
    wait.until(lambda d: dict((k, c[1]) for k, c in _rows(d, "keys", "key"))
               == {"before": "the failover"})

    leader.kill()
    new_leader = cluster.leader(timeout=cluster.session_timeout + 15)
    WebDriverWait(browser, PAGE_LAG_S, poll_frequency=0.05).until(
        lambda d: _text(d, "leader-name") == new_leader.name)
    WebDriverWait(browser, PAGE_LAG_S, poll_frequency=0.05).until(
        lambda d: leader.name not in [name for name, _ in _rows(d, "nodes", "node")])

    browser.find_element(By.ID, "key-input").send_keys("from-the-page")
    browser.find_element(By.ID, "value-input").send_keys("hello, browser")
    started = time.monotonic()
    browser.find_element(By.ID, "put-button").click()
    wait.until(lambda d: "acknowledged" in _text(d, "write-result")
               or "error" in d.find_element(By.ID, "write-result").get_attribute("class"))
    result = _text(browser, "write-result")
    assert f"acknowledged by {new_leader.name}" in result, result
    if viewer is not new_leader:
        assert "redirected" in result, result
    for node in cluster.live():
        WebDriverWait(browser, 10, poll_frequency=0.05).until(
            lambda d, node=node: node.get("from-the-page").status == 200)
        assert node.get("from-the-page").body["value"] == "hello, browser"
    WebDriverWait(browser, PAGE_LAG_S + time.monotonic() - started, poll_frequency=0.05).until(
        lambda d: dict((k, c[1]) for k, c in _rows(d, "keys", "key")).get("from-the-page")
        == "hello, browser")
    assert browser.execute_script("return window.loadedOnce === true;"), "the page reloaded"
