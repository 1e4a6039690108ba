"""The web page in headless Chromium: upload a photo, see the boxes drawn and the counts table."""

from __future__ import annotations

import os
import shutil

import cv2
import pytest
from local_server import local_server

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM and CHROMEDRIVER):
        reason = "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_page_draws_boxes_and_counts(browser, oracle_model, make_scene, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo = tmp_path / "wagons.png"
    cv2.imwrite(str(photo), make_scene(640, 400, red=(100, 100, 299, 199), blue=(400, 250, 499, 329)))
    with local_server(oracle_model, env={"RAILVISION_API_KEY": "k3y"}) as (url, _):
        browser.get(f"{url}/")
        wait = WebDriverWait(browser, 30)

        browser.find_element(By.ID, "file").send_keys(str(photo))
        status = browser.find_element(By.ID, "status")
        wait.until(lambda _: "unauthorized" in status.text)  # no key typed yet: the API refuses

        browser.find_element(By.ID, "key").send_keys("k3y")
        browser.execute_script(
            "const s = document.getElementById('conf'); s.value = '0.5';"
            "s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change'));"
        )
        canvas = browser.find_element(By.ID, "canvas")
        wait.until(lambda _: canvas.get_attribute("data-boxes") == "2")

        counts = {
            row.get_attribute("data-class"): int(row.find_element(By.CSS_SELECTOR, "td.n").text)
            for row in browser.find_elements(By.CSS_SELECTOR, "#counts tbody tr")
        }
        assert counts == {
            "diesel_locomotive": 0,
            "tank_car": 1,
            "covered_flatbed": 0,
            "closed_wagon": 1,
            "other_railcar": 0,
        }
        assert "2 found in 640×400" in status.text
        assert canvas.is_displayed()
        # The tank_car box's left edge (x = 100) is stroked in its class colour over the red wagon.
        pixel = browser.execute_script(
            "return Array.from(document.getElementById('canvas').getContext('2d').getImageData(100, 150, 1, 1).data)"
        )
        assert pixel[:3] == [255, 200, 0]
