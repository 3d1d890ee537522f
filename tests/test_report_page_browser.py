"""The report page in a real browser: headless Chromium (Debian's chromium and
chromium-driver) opens /experiments/{name} served by uvicorn and finds the variants and
the plot. Skipped only where Chromium is not installed."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.helpers import uvicorn_in_thread

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


@pytest.fixture
def server_with_experiment(seeded_db):
    from recommender.experiments.config import create_experiment
    from recommender.serving import strategies
    from recommender.serving.live import LiveRecommender
    from training.simulator import (DomainBackend, Readers, TasteSpace, default_start,
                                       simulate)
    from recommender.storage import open_store
    from service.app import create_app
    from recommender.core.settings import Settings

    store = open_store(seeded_db)
    rec = LiveRecommender(store)
    create_experiment(store, {"name": "browser-ab", "control": "pop", "variants": [
        {"name": "pop", "strategy": "popular"}, {"name": "con", "strategy": "content"}]},
        strategies.NAMES)
    space = TasteSpace.from_jsonl()
    rng = np.random.default_rng(0)
    simulate(DomainBackend(store, rec), Readers.sample(60, space, rng), space, 2, 10,
             default_start(2), rng)
    store.close()

    with uvicorn_in_thread(create_app(Settings(db=seeded_db, api_keys="k"))) as url:
        yield url


def test_report_page_shows_variants_and_plot(server_with_experiment, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,1400"):
        options.add_argument(arg)
    driver_path = shutil.which("chromedriver")
    assert driver_path, "chromium is installed but chromedriver is not (Debian: chromium-driver)"
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(f"{server_with_experiment}/experiments/browser-ab")
        assert "browser-ab" in driver.title
        rows = driver.find_elements(By.CSS_SELECTOR, "#variants tr.variant-row")
        assert sorted(r.get_attribute("data-variant") for r in rows) == ["con", "pop"]
        assert all(r.is_displayed() for r in rows)
        assert "popular" in rows[0].text + rows[1].text and "content" in rows[0].text + rows[1].text
        plot = driver.find_element(By.ID, "timeline-plot")
        assert plot.is_displayed() and plot.size["width"] > 300 and plot.size["height"] > 100
        lines = plot.find_elements(By.CSS_SELECTOR, "polyline.series")
        assert sorted(l.get_attribute("data-variant") for l in lines) == ["con", "pop"]
        for line in lines:
            assert len(line.get_attribute("points").split()) >= 2
            assert line.size["width"] > 50  # drawn across the time axis
        legend = plot.find_elements(By.CSS_SELECTOR, "g.legend-item")
        assert len(legend) == 2
        comparison = driver.find_elements(By.CSS_SELECTOR, "#comparison tr.comparison-row")
        assert {c.get_attribute("data-metric") for c in comparison} >= {"click_rate"}
        assert driver.find_element(By.ID, "srm").is_displayed()
        driver.save_screenshot(str(tmp_path / "report.png"))
    finally:
        driver.quit()
