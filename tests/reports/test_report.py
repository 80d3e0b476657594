"""The HTML report: one self-contained file, every chart in it, and a real browser shows them.

The browser check syncs a sandbox portal into a SQLite store (so the run
chart has stage transitions), writes the report with `leadsync report`, and
opens it in headless Chromium twice: a DOM dump (the page's inline script
marks each chart decoded and where it sits) and a screenshot, whose chart
regions must hold the very images embedded in the file. Chromium is
required when CI=true; elsewhere the test skips when it is not installed.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
import yaml
from PIL import Image, ImageChops, ImageStat

from sync.app import open_portal
from sync.cli import main
from sync.config import load_portal
from sync.core.rules import compile_ruleset
from sync.hubspot.retry import RetryPolicy
from sync.pipeline import Cycle
from sync.ports import RunRecord, StageTransition
from sync.reports.backtest import DEFAULT_OUTCOME, Backtest, parse_outcome, run_backtest
from sync.reports.dataset import from_snapshot
from sync.reports.report import ReportInputs, RunActivity, render_report
from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from sync.store.state import SqlStateStore
from tests.factories import example_rules, sandbox_config
from tests.fakes import ManualClock
from tests.reports.conftest import EXAMPLE_PORTAL_ID, HIGH_MQL_BAND_WIDTH, NOW_MS

CHARTS = [
    "chart-score-distribution",
    "chart-grade-matrix-0",
    "chart-conversion-by-band",
    "chart-stage-transitions",
    "chart-rule-contribution",
]
T0 = datetime.fromtimestamp(NOW_MS / 1000, UTC)


class Page(HTMLParser):
    """The chart images and the body's attributes of an HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.charts: dict[str, dict[str, str]] = {}
        self.urls: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = found
        if tag == "img" and "chart" in found.get("class", "").split():
            self.charts[found["id"]] = found
        self.urls += [found[k] for k in ("src", "href") if k in found]


@pytest.fixture(scope="module")
def backtest(snapshot_file: Path) -> Backtest:
    data = from_snapshot(snapshot_file)
    return run_backtest(data.inputs(), example_rules(), NOW_MS, parse_outcome(DEFAULT_OUTCOME))


def runs() -> list[RunActivity]:
    first = RunRecord("r-1", EXAMPLE_PORTAL_ID, "full", T0, T0 + timedelta(minutes=2), "ok")
    second = RunRecord("r-2", EXAMPLE_PORTAL_ID, "incremental", T0 + timedelta(minutes=15), None, "ok")
    return [
        RunActivity(first, [StageTransition("r-1", "lead", "marketingqualifiedlead", 40),
                            StageTransition("r-1", "", "salesqualifiedlead", 7)]),
        RunActivity(second, [StageTransition("r-2", "marketingqualifiedlead", "salesqualifiedlead", 3)]),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def page(backtest: Backtest) -> str:
    return render_report(backtest, ReportInputs("acme-eu", "snapshot s.json", runs()))


def test_every_chart_is_an_embedded_png(page: str) -> None:
    parsed = Page(page)
    assert list(parsed.charts) == CHARTS
    assert parsed.body["data-charts"] == str(len(CHARTS))
    for chart in parsed.charts.values():
        prefix = "data:image/png;base64,"
        assert chart["src"].startswith(prefix) and chart["alt"]
        png = Image.open(io.BytesIO(base64.b64decode(chart["src"][len(prefix) :])))
        assert png.format == "PNG" and png.width > 300 and png.height > 200


def test_the_page_needs_nothing_from_the_network(page: str) -> None:
    parsed = Page(page)
    assert all(url.startswith("data:") for url in parsed.urls)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert not re.search(r"url\(|@import|<link|<script[^>]+src|<iframe", page, re.IGNORECASE)


def test_the_page_has_the_headline_numbers_and_the_warnings(snapshot_file: Path, high_mql_config: Path) -> None:
    rules = compile_ruleset(load_portal(high_mql_config).rules)
    data = from_snapshot(snapshot_file)
    warned = run_backtest(data.inputs(), rules, NOW_MS, parse_outcome(DEFAULT_OUTCOME), band_width=HIGH_MQL_BAND_WIDTH)
    page = render_report(warned, ReportInputs("acme-eu", "snapshot s.json", runs()))
    assert "leadsync report: acme-eu" in page
    assert f"{warned.contacts:,}" in page and "What to look at" in page
    assert "looks too high" in page  # the MQL warning, as the backtest words it
    assert "Close rate by rule" in page and "demo-request" in page


def test_text_from_the_data_is_escaped(backtest: Backtest) -> None:
    text = render_report(backtest, ReportInputs("<script>alert(1)</script>", "snapshot", None))
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


@pytest.mark.parametrize(
    ("activity", "note", "says"),
    [
        (None, "", "No state store was given"),
        ([], "The state store has no runs for portal acme-eu (12345678) yet.", "has no runs for portal acme-eu"),
    ],
)
def test_without_runs_the_section_says_so(
    backtest: Backtest, activity: list[RunActivity] | None, note: str, says: str
) -> None:
    text = render_report(backtest, ReportInputs("acme-eu", "snapshot", activity, note))
    assert says in text and 'id="chart-stage-transitions"' not in text


def test_runs_that_moved_no_stage_are_said_to_have_moved_none(backtest: Backtest) -> None:
    quiet = [RunActivity(r.run) for r in runs()]
    text = render_report(backtest, ReportInputs("acme-eu", "snapshot", quiet))
    assert "None of the last 2 runs moved a contact" in text


# -- in a browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium binary: skipped when there is none, failed instead when CI=true."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "Chromium not found (chromium or chromium-browser on PATH): apt-get install chromium"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


@dataclass
class Synced:
    report: Path  # `leadsync report --snapshot`, after the syncs
    live: Path  # `leadsync report` reading the sandbox portal itself


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    """Reports of a sandbox portal after a full and an incremental sync into SQLite."""
    tmp = tmp_path_factory.mktemp("synced")
    clock = ManualClock.at_ms(NOW_MS + 3_600_000)
    with (
        pytest.MonkeyPatch.context() as env,
        Sandbox(generate_portal(1500, 12, portal_id=EXAMPLE_PORTAL_ID), rate_limit="off", clock=clock.seconds) as sb,
    ):
        config = sandbox_config(sb.url, "LEADSYNC_REPORT_TOKEN")
        config_file = tmp / "portal.yaml"
        config_file.write_text(yaml.safe_dump(config))
        env.setenv("LEADSYNC_REPORT_TOKEN", sb.token)
        db = f"sqlite:///{tmp / 'state.db'}"
        store = SqlStateStore(db)
        try:
            portal = open_portal(config_file, store, RetryPolicy(attempts=3, base_wait=0.01, sleep=lambda s: None))
            portal.clock = clock
            assert Cycle(portal, "full").run().status == "ok"
            _demo_requests(sb, clock.ms - 600_000)  # a second run with stage moves of its own
            clock.ms += 900_000
            assert Cycle(portal, "incremental").run().status == "ok"
        finally:
            store.close()
        snapshot = tmp / "snapshot.json"
        snapshot.write_bytes(requests.get(f"{sb.url}/__sandbox/snapshot", timeout=60).content)
        argv = ["report", "--config", str(config_file), "--now", clock.now().isoformat(), "--db", db]
        assert main([*argv, "--out", str(tmp / "live.html")]) == 0
    assert main([*argv, "--snapshot", str(snapshot), "--out", str(tmp / "report.html")]) == 0
    yield Synced(tmp / "report.html", tmp / "live.html")


def test_without_a_snapshot_the_report_reads_the_live_portal(synced: Synced) -> None:
    live, offline = synced.live.read_text(encoding="utf-8"), synced.report.read_text(encoding="utf-8")
    assert "portal acme-eu (live), as of" in live and "snapshot " in offline
    assert list(Page(live).charts) == list(Page(offline).charts) == CHARTS
    # The same contacts, scores and runs either way: the headline cards agree.
    cards = re.compile(r'<section class="cards">.*?</section>', re.DOTALL)
    assert cards.findall(live) == cards.findall(offline)


def _demo_requests(sb: Sandbox, at_ms: int) -> None:
    raw = requests.get(f"{sb.url}/__sandbox/snapshot", timeout=60).json()
    demo = next(f["id"] for f in raw["forms"] if f["name"] == "Demo request")
    leads = [c for c in raw["contacts"] if c["properties"].get("lifecyclestage") == "lead"][:40]
    submissions = [
        {"formId": demo, "conversionId": f"report-{c['id']}", "submittedAt": at_ms, "pageUrl": "https://x.example/demo",
         "values": [{"name": "email", "value": c["properties"]["email"]}]}
        for c in leads
    ]  # fmt: skip
    requests.post(
        f"{sb.url}/__sandbox/form_submissions", json={"form_submissions": submissions}, timeout=30
    ).raise_for_status()


def _run_chromium(binary: str, profile: Path, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", f"--user-data-dir={profile}", "--window-size=1280,4000",
        "--force-device-scale-factor=1", "--hide-scrollbars", *args, page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _saturated_share(image: Image.Image) -> float:
    """The share of pixels with a clear colour (not white, grey or black)."""
    hsv = image.convert("HSV")
    saturation, value = hsv.getchannel("S"), hsv.getchannel("V")
    coloured = ImageChops.multiply(
        saturation.point(lambda s: 255 if s > 80 else 0), value.point(lambda v: 255 if v > 60 else 0)
    )
    return ImageStat.Stat(coloured).mean[0] / 255


@pytest.mark.browser
def test_chromium_renders_the_report_with_every_chart(chromium: str, synced: Synced, tmp_path: Path) -> None:
    synced_report, binary = synced.report, chromium
    dom = Page(_run_chromium(binary, tmp_path / "profile-dom", synced_report, "--dump-dom").stdout)
    embedded = Page(synced_report.read_text(encoding="utf-8"))
    assert list(dom.charts) == CHARTS
    assert dom.body.get("data-charts-loaded") == dom.body["data-charts"] == str(len(CHARTS))
    assert all(chart["data-loaded"] == "1" for chart in dom.charts.values())

    shot = tmp_path / "report.png"
    _run_chromium(binary, tmp_path / "profile-shot", synced_report, f"--screenshot={shot}")
    screen = Image.open(shot).convert("RGB")
    assert screen.size == (1280, 4000)
    assert len(screen.getcolors(maxcolors=1 << 20) or []) > 500  # a rendered page, not a blank one
    for chart_id, chart in dom.charts.items():
        x, y, width, height = (int(n) for n in chart["data-box"].split(","))
        assert width > 300 and height > 200 and y + height <= 4000, (chart_id, chart["data-box"])
        region = screen.crop((x, y, x + width, y + height))
        assert _saturated_share(region) > 0.01, f"{chart_id}: no colour where the chart should be"
        # The region shows the very image embedded in the file (scaled to fit its column).
        src = embedded.charts[chart_id]["src"].split(",", 1)[1]
        original = Image.open(io.BytesIO(base64.b64decode(src))).convert("RGB").resize((width, height))
        difference = ImageStat.Stat(ImageChops.difference(region, original)).mean
        assert max(difference) < 12, f"{chart_id}: the screenshot differs from the chart ({difference})"
