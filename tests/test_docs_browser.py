"""The API docs render in a real headless browser with no network but loopback (no CDN)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from test_service import registry, tiny_config_module, two_ticker_bars_module  # noqa: F401
from test_service_edges import uvicorn

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not found: .ci/run installs Debian's (apt-get install -y chromium)"
)


def chromium(url: str, profile, *args: str) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        # Offline but for the server: any CDN host fails to resolve, as on a closed network.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}", "--window-size=1280,2000", "--virtual-time-budget=5000", *args, url,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def docs_server(registry):  # noqa: F811
    with uvicorn(registry, FORECASTER_API_KEYS="docs-key") as (url, _):
        yield url


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_render_the_operations_offline(docs_server, tmp_path, page):
    dom = chromium(f"{docs_server}{page}", tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    for path in ("/v1/forecast", "/v1/forecast/batch", "/v1/forecasts/{ticker}", "/v1/model"):
        assert path in dom.stdout, f"{page} did not render {path}: {dom.stdout[:1500]}"
    png = tmp_path / "page.png"
    shot = chromium(f"{docs_server}{page}", tmp_path / "profile", f"--screenshot={png}")
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(png)[:, :, :3]
    # A blank page is one colour; a rendered one has text and coloured operation blocks.
    assert pixels.std() > 0.05 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
