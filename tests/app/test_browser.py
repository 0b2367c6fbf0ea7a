"""What a person sees in a real browser: `hubatlas serve` driven by headless Chromium."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.browser import browser_missing, make_driver, serve, severe_console_errors
from tests.app.fixtures import build_small_atlas

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or ""),
]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

PAGES = {
    "atlas": ("/", "#atlas-graph .main-svg"),
    "model": ("/model/alice/ft-chat", "#model-layers .main-svg"),
    "family": ("/family/base-org/base-7b", "#family-graph .main-svg"),
    "merge": ("/merge/alice/ft-chat", "#merge-yaml"),
    "sql": ("/sql", "#sql-query"),
    "model-placeholder": ("/model/ghost/deleted-base", "#model-title"),
    "merge-missing": ("/merge/bob/ft-code", ".notice"),
    "families": ("/family", "main li a"),
    "merge-index": ("/merge", "main li a"),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = build_small_atlas(tmp_path_factory.mktemp("browser") / "atlas.duckdb", layout=False)
    with serve(db) as url:  # serve computes the missing layout itself
        yield url


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[object]:
    driver = make_driver(downloads)
    yield driver
    driver.quit()


def wait_for(driver, css: str, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def wait_until(predicate, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_loads_without_console_errors(site: str, browser, name: str) -> None:
    path, ready = PAGES[name]
    severe_console_errors(browser)  # drop what earlier pages logged
    browser.get(site + path)
    wait_for(browser, ready)
    time.sleep(0.4)  # let late callbacks report their errors, if any
    assert severe_console_errors(browser) == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    assert "Internal Server Error" not in browser.page_source


def test_pages_say_plainly_when_data_is_missing(site: str, browser) -> None:
    browser.get(site + "/merge/bob/ft-code")
    assert "No merge suggestions for bob/ft-code yet" in wait_for(browser, ".notice").text
    browser.get(site + "/model/ghost/deleted-base")
    wait_for(browser, "#model-title")
    assert "Not stored" in browser.find_element("css selector", ".notice").text


def test_search_box_finds_a_model_and_opens_it(site: str, browser) -> None:
    browser.get(site + "/sql")
    wait_for(browser, "#sql-query")
    wait_for(browser, "#search-box").click()
    field = wait_for(browser, "input.dash-dropdown-search")
    field.send_keys("eve/hid")
    option = wait_until(
        lambda: [
            o for o in browser.find_elements("css selector", "[role=option]") if o.text == "eve/hidden-ft"
        ]
    )[0]
    option.click()
    wait_until(lambda: browser.current_url.endswith("/model/eve/hidden-ft"))
    assert wait_for(browser, "#model-title").text == "eve/hidden-ft"


def test_clicking_a_node_opens_its_model_page(site: str, browser) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    browser.get(site + "/")
    graph = wait_for(browser, "#atlas-graph .main-svg")
    wait_for(browser, "#atlas-graph .gl-container canvas")
    # Pixel position of the family root in the plot, from plotly's own axis mapping.
    x, y = browser.execute_script(
        """
        const gd = document.querySelector('#atlas-graph .js-plotly-plot');
        for (const t of gd._fullData) {  // decoded arrays (the figure sends typed arrays)
          const i = (t.text || []).indexOf('base-org/base-7b');
          if (i >= 0) {
            const L = gd._fullLayout;
            return [L._size.l + L.xaxis.l2p(t.x[i]), L._size.t + L.yaxis.l2p(t.y[i])];
          }
        }
        return null;
        """
    )
    body = browser.find_element("css selector", "body")
    time.sleep(0.5)
    # Page coordinates of the point (offsets from the body's top-left corner), then a real mouse click.
    left, top = browser.execute_script(
        "const r = document.querySelector('#atlas-graph .js-plotly-plot').getBoundingClientRect();"
        "return [r.left + window.scrollX, r.top + window.scrollY];"
    )
    ActionChains(browser).move_to_element_with_offset(body, left + x, top + y).pause(0.3).click().perform()
    wait_until(lambda: browser.current_url.endswith("/model/base-org/base-7b"))
    assert wait_for(browser, "#model-title").text == "base-org/base-7b"
    assert graph is not None


def run_sql(browser, site: str, sql: str, *, ctrl_enter: bool = False):  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.keys import Keys

    browser.get(site + "/sql")
    box = wait_for(browser, "#sql-query")
    box.send_keys(Keys.CONTROL, "a")  # clear() does not reach React's state; select all and type over
    box.send_keys(Keys.DELETE)
    box.send_keys(sql)
    if ctrl_enter:
        box.send_keys(Keys.CONTROL, Keys.ENTER)
    else:
        browser.find_element("css selector", "#sql-run").click()


def test_sql_page_runs_a_query_and_downloads_csv(site: str, browser, downloads: Path) -> None:
    run_sql(browser, site, "SELECT id, depth FROM descendants('alice/ft-chat') ORDER BY id", ctrl_enter=True)
    wait_until(lambda: "3 rows" in browser.find_element("css selector", "#sql-status").text)
    table = browser.find_element("css selector", "#sql-table").text
    assert "carol/chat-gguf" in table and "eve/hidden-ft" in table
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "sql-result.png"))
    browser.find_element("css selector", "#sql-csv").click()
    csv_file = downloads / "query.csv"
    wait_until(csv_file.exists)
    wait_until(lambda: len(csv_file.read_text().splitlines()) >= 4)
    assert csv_file.read_text().splitlines() == [
        "id,depth",
        "carol/chat-gguf,1",
        "dave/merge-chat-code,1",
        "eve/hidden-ft,1",
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "COPY models TO '/tmp/hubatlas-leak.csv'",
        "ATTACH '/tmp/other.duckdb' AS o",
    ],
)
def test_forbidden_queries_are_refused_with_a_message(site: str, browser, sql: str) -> None:
    run_sql(browser, site, sql)
    error = wait_for(browser, "#sql-error .notice-error")
    assert "refused or failed" in error.text and "Permission" in error.text
    assert not Path("/tmp/hubatlas-leak.csv").exists()
    assert severe_console_errors(browser) == []


def test_serve_keeps_serving_while_another_process_writes(tmp_path: Path, browser) -> None:
    from tests.app.fixtures import writer_holding_lock

    db = build_small_atlas(tmp_path / "atlas.duckdb")
    with serve(db) as url:
        with writer_holding_lock(db) as release:  # the crawl's write lock is held inside
            browser.get(url + "/model/alice/ft-chat")
            assert wait_for(browser, "#model-title").text == "alice/ft-chat"
            browser.get(url + "/model/new-org/fresh")
            assert "No model 'new-org/fresh'" in wait_for(browser, ".notice-error").text
            release()
        time.sleep(1.2)  # the app looks for a new file version at most once a second

        def fresh_page_shown() -> bool:
            browser.get(url + "/model/new-org/fresh")
            return wait_for(browser, "#model-title").text == "new-org/fresh" and not browser.find_elements(
                "css selector", ".notice-error"
            )

        assert wait_until(fresh_page_shown, timeout=15)
        assert severe_console_errors(browser) == []


@pytest.mark.slow
def test_real_network_atlas_shows_every_model_without_errors(
    tmp_path: Path, real_data: Path, browser
) -> None:
    from tests.app.fixtures import build_network_atlas

    db = build_network_atlas(tmp_path / "net.duckdb", real_data / "hub-dependency-network-2025", layout=False)
    with serve(db) as url:
        severe_console_errors(browser)
        browser.get(url + "/")
        wait_for(browser, "#atlas-graph .gl-container canvas", timeout=30)
        drawn = wait_until(
            lambda: browser.execute_script(
                "const gd = document.querySelector('#atlas-graph .js-plotly-plot');"
                "return gd && gd._fullData ? gd._fullData.filter(t => t.mode === 'markers')"
                ".reduce((n, t) => n + t._length, 0) : 0;"
            )
        )
        assert drawn == 29_075
        assert "29,075 models in 2,750 families" in browser.find_element("css selector", "#atlas-stats").text
        time.sleep(0.5)
        assert severe_console_errors(browser) == []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / "atlas-network.png"))
