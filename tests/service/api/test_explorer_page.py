"""The explorer page (GET /) in a real headless Chromium, driven by Selenium, against a real
uvicorn server on a loopback port: describe a new user, choose a known one, read why each item
is listed, open an item's similar items, record an interaction, edit the profile, add items
with a few genres and retire one; what the page shows is checked against the API's own
answers.

The bundle is fit on a tiny made-up movie catalog (tiny_movies.py), so items have titles and
users have gender, age and occupation, as on MovieLens. The screenshot of the finished flow
goes to $GMLREC_EXPLORER_SCREENSHOT when set (docs/explorer.png, which the README and
docs/explorer.md show, is made that way), else to the test's temporary folder: a test run
leaves the work tree as it was.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tests.service.api.conftest import fit_and_export, settings_for
from tests.service.api.live import live_server
from tests.service.api.tiny_movies import taste, write_tiny_movies

CHROMIUM = Path(os.environ.get("GMLREC_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("GMLREC_CHROMEDRIVER", "/usr/bin/chromedriver"))
WAIT_S = 30
WIDTH = 1280


def _selenium():
    """The selenium package, or a skip that says what is missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.skip(f"no headless browser: {', '.join(missing)} not found (Debian: apt-get "
                    "install chromium chromium-driver; .ci/run does)")
    return pytest.importorskip("selenium.webdriver",
                               reason="selenium is not installed (pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def movies(tmp_path_factory):
    root = tmp_path_factory.mktemp("movies")
    data = write_tiny_movies(root / "ml-1m")
    # enough epochs, at a high enough rate, for user features to steer the ranking; a
    # history field, so that what a user marks seen moves the rest of the list
    return fit_and_export(root, "gmlfm", 0, "--distance", "dnn", "--layers", "1",
                          "--epochs", "8", "--lr", "0.02", "--history", "10",
                          data=f"movielens-1m:{data}", name="movies")


@pytest.fixture(scope="module")
def browser():
    webdriver = _selenium()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={WIDTH},1000", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(str(CHROMEDRIVER)),
                              options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def server(browser, movies):  # the browser first: nothing is fit where it is missing
    with live_server(settings_for(movies.models_dir)) as base:
        yield base


class Page:
    """The explorer as a person sees it: what is on screen, and the controls."""

    def __init__(self, driver, base: str):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.select import Select
        from selenium.webdriver.support.wait import WebDriverWait

        self.driver, self.base, self.by, self.select = driver, base, By, Select
        self.wait = WebDriverWait(driver, WAIT_S)

    def open(self) -> None:
        self.driver.get(self.base + "/")
        self.until(lambda: self.driver.find_element(self.by.TAG_NAME, "body")
                   .get_attribute("data-ready") == "true", "the page never finished starting")

    def until(self, condition, what: str):
        return self.wait.until(lambda _: condition(), message=what)

    def text(self, element_id: str) -> str:
        return self.driver.find_element(self.by.ID, element_id).text

    def css(self, selector: str) -> list:
        return self.driver.find_elements(self.by.CSS_SELECTOR, selector)

    def items(self) -> list[tuple[str, str]]:
        """(item id, title) of each listed item, best first, read in one script: the list
        may be redrawn between two separate element reads."""
        rows = self.driver.execute_script(
            "return [...document.querySelectorAll('#items li.item')].map("
            "row => [row.dataset.itemId, row.querySelector('.title').textContent])")
        return [tuple(row) for row in rows]

    def similar(self) -> list[tuple[str, str]]:
        """(item id, title) of each item the item panel lists as similar, most first."""
        rows = self.driver.execute_script(
            "return [...document.querySelectorAll('#similar-items li.item')].map("
            "row => [row.dataset.itemId, row.querySelector('.title').textContent])")
        return [tuple(row) for row in rows]

    def choose(self, field: str, value: str) -> None:
        self.select(self.driver.find_element(self.by.ID, f"field-{field}")) \
            .select_by_value(value)

    def chosen(self, field: str) -> str:
        return self.select(self.driver.find_element(self.by.ID, f"field-{field}")) \
            .first_selected_option.get_attribute("value")

    def click(self, element_id: str) -> None:
        self.driver.find_element(self.by.ID, element_id).click()

    def type(self, element_id: str, text: str) -> None:
        box = self.driver.find_element(self.by.ID, element_id)
        box.clear()
        box.send_keys(text)

    def add_item(self, item_id: str, title: str, genres: list[str]) -> None:
        """Fill in the form that adds an item (an empty id: the page makes one) and send it."""
        self.type("add-id", item_id)
        self.type("add-name", title)
        for box in self.css("#add-values input"):
            if box.is_selected() != (box.get_attribute("value") in genres):
                box.click()
        self.click("add-item")

    def marked(self) -> list[str]:
        """Ids of the listed items marked as the one this page added."""
        return [row.get_attribute("data-item-id") for row in self.css("#items li.item.added")]

    def shows(self, expected: list[tuple[str, str]], what: str) -> None:
        self.until(lambda: self.items() == expected, f"{what}: the page never listed "
                                                     f"{expected}, it shows {self.items()}")

    def screenshot(self, path: Path) -> None:
        """The whole page, not the window: the viewport grows to the page's height."""
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False})
        path.parent.mkdir(parents=True, exist_ok=True)
        assert self.driver.save_screenshot(str(path))


def listed(answer: httpx.Response) -> list[tuple[str, str]]:
    assert answer.status_code == 200, answer.text
    return [(item["item_id"], item["title"]) for item in answer.json()["items"]]


def rank_of(api: httpx.Client, user_id: str, item_id: str) -> int:
    """Where the API ranks an item for a user, counted from 1, among every unseen item."""
    ranking = [i for i, _ in listed(api.get(f"/recommend/{user_id}", params={
        "n": 1000, "details": "true"}))]
    assert item_id in ranking, f"{item_id} is not ranked for user {user_id}"
    return ranking.index(item_id) + 1


def test_the_explorer_flow(server, browser, movies, tmp_path):
    page, api = Page(browser, server), httpx.Client(base_url=server, timeout=10)
    page.open()
    assert page.text("model-version") == movies.version
    assert "144 items" in page.text("model-size") and "40 users" in page.text("model-size")
    assert page.text("error") == ""

    # a new user described by their fields: nothing stored, nothing to record
    described = {"gender": "F", "age": "50", "occupation": "writer"}
    for field, value in described.items():
        page.choose(field, value)
    page.click("try-profile")
    page.shows(listed(api.post("/recommend", json={"user": described, "n": 10,
                                                   "details": True})), "a described user")
    assert not page.css("#items button.seen")

    # a known user, chosen from the suggestions: their profile fills the form
    page.css("#suggestions button[aria-label='Choose user 3']")[0].click()
    page.shows(listed(api.get("/recommend/3", params={"details": "true"})), "user 3")
    profile = api.get("/users/3").json()["features"]
    assert {f: page.chosen(f) for f in described} == {f: profile[f] for f in described}
    assert page.text("answer-version") == movies.version
    assert re.fullmatch(r"\d+\.\d\d ms", page.text("server-time"))
    assert page.text("last-request") == "GET /recommend/3?n=10&details=true&explain=true"

    # each recommendation says why, in the API's words (explain=true), the terms on hover
    explained = api.get("/recommend/3", params={"details": "true", "explain": "true"})
    for item in explained.json()["items"]:
        row = page.css(f"#items li[data-item-id='{item['item_id']}']")[0]
        reasons = item["explanation"]["reasons"]
        shown = row.find_elements(page.by.CLASS_NAME, "reasons")
        assert [r.text for r in shown] == ([" · ".join(reasons)] if reasons else [])
        if shown:
            assert shown[0].get_attribute("title").startswith("score ")
    assert page.css("#items li.item .reasons"), "no reason is shown"

    # an item's page: the items most like it (GET /items/{id}/similar)
    first_id, first_title = page.items()[0]
    page.css(f"#items li[data-item-id='{first_id}'] button.similar")[0].click()
    similar = listed(api.get(f"/items/{first_id}/similar", params={"n": 5, "details": "true"}))
    page.until(lambda: page.similar() == similar, f"the page never listed the items like "
                                                  f"{first_id}: {similar}")
    assert page.text("similar-title") == f"More like “{first_title}”"

    # record an interaction: the item leaves the list, and the rest moves with it (the
    # model's history field), beyond closing the gap
    before = page.items()
    first_id, first_title = before[0]
    page.css(f"#items li[data-item-id='{first_id}'] button.seen")[0].click()
    page.until(lambda: first_title in page.text("last-action"),  # the click's POST landed
               "the interaction was never recorded")
    after_seen = listed(api.get("/recommend/3", params={"details": "true"}))
    assert first_id not in {i for i, _ in after_seen} and len(after_seen) == 10
    assert after_seen != before[1:] + after_seen[9:], "the list only closed the gap"
    page.shows(after_seen, "after recording an interaction")
    assert first_title in page.text("last-action")

    # only one genre: the list is the exact top of that genre (POST /recommend's filter)
    genre = taste(profile["gender"], profile["age"])[1]
    page.select(page.driver.find_element(page.by.ID, "only")).select_by_value(genre)
    only = listed(api.post("/recommend", json={"user_id": "3", "n": 10, "details": True,
                                               "filter": {"include": {"genre": [genre]}}}))
    page.shows(only, f"only {genre}")
    assert all(genre in api.get(f"/items/{i}").json()["features"]["genre"] for i, _ in only)
    assert only != after_seen and f"Genre {genre}" in page.text("results-note")
    page.select(page.driver.find_element(page.by.ID, "only")).select_by_value("")
    page.shows(after_seen, "the whole catalog again")

    # edit the profile into a group with other tastes: the list follows
    gender = "M" if profile["gender"] == "F" else "F"
    age = "18" if int(profile["age"]) >= 35 else "50"
    assert set(taste(gender, age)).isdisjoint(taste(profile["gender"], profile["age"]))
    page.choose("gender", gender)
    page.choose("age", age)
    page.click("save-profile")
    page.until(lambda: api.get("/users/3").json()["source"] == "stored", "the PUT never landed")
    assert api.get("/users/3").json()["features"] == {**{f: profile[f] for f in described},
                                                       "gender": gender, "age": age}
    edited = listed(api.get("/recommend/3", params={"details": "true"}))
    assert edited != after_seen and first_id not in {i for i, _ in edited}
    page.shows(edited, "after the profile edit")
    assert page.css("#items .change.new") or page.css("#items .change.up")
    assert page.text("error") == ""

    # add items for another user: one of a genre the user's group does not favour, ranked
    # below the list (the page looks deeper), then one of the two genres it does, ranked in
    # it at once and marked there
    user = "10"
    page.type("user-id", user)
    page.click("load-user")
    page.shows(listed(api.get(f"/recommend/{user}", params={"details": "true"})), f"user {user}")
    profile = api.get(f"/users/{user}").json()["features"]
    liked = list(taste(profile["gender"], profile["age"]))
    other = taste("F" if profile["gender"] == "M" else "M",  # the opposite group's
                  "50" if int(profile["age"]) < 35 else "18")[0]
    page.add_item("a-documentary", "A documentary added today", [other])
    page.until(lambda: "Added “A documentary added today”" in page.text("last-action"),
               "the first item was never added")
    far = rank_of(api, user, "a-documentary")
    assert far > 10, "pick a genre the user's group ranks lower"
    assert f"It ranks #{far} for user {user}, below the 10 shown." in page.text("last-action")
    assert "a-documentary" not in {i for i, _ in page.items()} and page.marked() == []
    page.select(page.driver.find_element(page.by.ID, "n")).select_by_visible_text("20")
    page.add_item("", "A film added today", liked)
    page.until(lambda: "Added “A film added today”" in page.text("last-action"),
               "the second item was never added")
    (new_id,) = page.marked()
    stored = api.get(f"/items/{new_id}").json()
    assert new_id.startswith("a-film-added-today-") and stored["source"] == "added"
    assert stored["features"] == {"genre": liked} and stored["title"] == "A film added today"
    with_new = listed(api.get(f"/recommend/{user}", params={"n": 20, "details": "true"}))
    assert (new_id, "A film added today") in with_new
    page.shows(with_new, "after adding an item")
    k = rank_of(api, user, new_id)
    assert page.items()[k - 1][0] == new_id
    row = page.css(f"#items li[data-item-id='{new_id}']")[0]
    assert row.find_element(page.by.CLASS_NAME, "meta").text == f"item {new_id} · " + \
        ", ".join(liked)
    assert row.find_element(page.by.CLASS_NAME, "change").text == "added"
    assert (f"Added “A film added today” ({', '.join(liked)}) as item {new_id}. It ranks "
            f"#{k} for user {user}, marked in the list.") == page.text("last-action")
    assert page.text("error") == ""

    shot = Path(os.environ.get("GMLREC_EXPLORER_SCREENSHOT") or tmp_path / "explorer.png")
    page.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # retire it from the list: it leaves every answer
    page.css(f"#items li[data-item-id='{new_id}'] button.retire")[0].click()
    page.until(lambda: "Retired “A film added today”" in page.text("last-action"),
               "the item was never retired")
    retired = api.get(f"/items/{new_id}")
    assert retired.status_code == 404 and retired.json()["retired"] is True
    without = listed(api.get(f"/recommend/{user}", params={"n": 20, "details": "true"}))
    assert new_id not in {i for i, _ in without}
    page.shows(without, "after retiring the item")
    assert page.text("error") == ""


def test_api_errors_are_shown_readably(server, browser):
    page = Page(browser, server)
    page.open()
    box = page.driver.find_element(page.by.ID, "user-id")
    box.clear()
    box.send_keys("nobody-here")
    page.click("load-user")
    page.until(lambda: page.text("error") != "", "no error was shown for an unknown user")
    assert page.text("error") == ("GET /users/nobody-here answered 404 Not Found: unknown user "
                                  "'nobody-here': PUT /users/{user_id} creates a profile")
    assert page.text("save-profile") == "Save as user nobody-here"  # and it offers to
    assert page.items() == []

    # an item with more genres than the field has columns: the 422 names the field
    page.add_item("three-genres", "Too many genres", ["Action", "Comedy", "Drama"])
    page.until(lambda: "422" in page.text("error"), "no error was shown for three genres")
    assert page.text("error") == ("PUT /items/three-genres answered 422 Unprocessable "
                                  "Entity: features.genre: genre: at most 2 value(s), got 3")


def test_a_service_behind_keys_asks_for_one_and_takes_it(browser, movies):
    """With API keys configured the page says what is missing, and works once a key is
    entered; a key that may not list users only loses the suggestions, and one that may not
    change the catalog is told so when it adds an item."""
    keys = ("read:reader-key-0123456789abcdef,admin:admin-key-0123456789abcdef,"
            "catalog:catalog-key-0123456789abcdef")
    with live_server(settings_for(movies.models_dir, api_keys=SecretStr(keys))) as base:
        page = Page(browser, base)
        page.driver.get(base + "/")
        page.driver.execute_script("sessionStorage.clear()")
        page.open()
        assert "401" in page.text("error") and "Enter an API key" in page.text("error")
        for key, suggestions, scope in (("reader-key-0123456789abcdef", 0, "read"),
                                        ("catalog-key-0123456789abcdef", 0, "catalog"),
                                        ("admin-key-0123456789abcdef", 12, "admin")):
            page.type("api-key", key)
            page.click("use-key")
            page.until(lambda: page.text("model-version") == movies.version and
                       page.text("last-request") == "GET /model?values=200",
                       "the model never showed")  # and the forms are built again
            page.until(lambda n=suggestions: len(page.css("#suggestions button")) == n,
                       f"{suggestions} user suggestions never showed")
            assert page.text("error") == ""
            page.add_item(f"added-by-{scope}", f"Added with a {scope} key", ["Drama"])
            if scope == "read":
                page.until(lambda: "403" in page.text("error"), "no error for a read key's PUT")
                assert page.text("error") == (
                    "PUT /items/added-by-read answered 403 Forbidden: this key's scope is read; "
                    "this route needs catalog. Enter a key of that scope, or an admin key, at "
                    "the top of the page.")
            else:
                page.until(lambda s=scope: f"Added with a {s} key" in page.text("last-action"),
                           f"a {scope} key's item was never added")
                assert page.text("error") == ""
        page.driver.execute_script("sessionStorage.clear()")
