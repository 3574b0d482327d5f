"""Fixtures for the data tests: tiny bars, and a fake Yahoo behind the real yfinance."""

from __future__ import annotations

import http
import json
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pandas as pd
import pytest
import requests
from yfinance import cache as yf_cache
from yfinance import data as yf_data

YAHOO_FIXTURES = Path(__file__).parent / "fixtures" / "yahoo"


@pytest.fixture
def make_bars():
    """make_bars(ticker, n, start) -> n valid contract bars on business days."""

    def make(ticker: str = "AAPL", n: int = 5, start: str = "2020-01-02") -> pd.DataFrame:
        close = 100.0 + np.arange(n)
        return pd.DataFrame(
            {
                "ticker": ticker,
                "date": pd.bdate_range(start, periods=n).astype("datetime64[us]"),
                "open": close - 0.5,
                "high": close + 1.0,
                "low": close - 1.0,
                "close": close,
                "adj_close": close * 0.98,
                "volume": 1000.0 + np.arange(n),
            }
        )

    return make


class FakeYahoo(requests.adapters.BaseAdapter):
    """A transport that answers yfinance's HTTPS requests from recorded Yahoo responses.

    `charts[symbol] = (status, body)` sets the chart answer for a symbol (body: bytes, or an
    exception to raise, such as a timeout); other symbols get Yahoo's 404. A list of answers
    is served in order, one per chart request, its last answer repeating. As Yahoo does, a
    recorded chart is cut to the requested `period1`..`period2` (end exclusive). Every request
    is kept in `requests` as (url, timeout).
    """

    def __init__(self):
        super().__init__()
        self.charts: dict[str, tuple[int, bytes | Exception] | list[tuple[int, bytes | Exception]]] = {}
        self.requests: list[tuple[str, float | None]] = []

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        self.requests.append((request.url, timeout))
        path = urlsplit(request.url).path
        if path.endswith("/v1/test/getcrumb"):
            return _response(request, 200, b"fake-crumb")
        if path.startswith("/v8/finance/chart/"):
            symbol = unquote(path.rsplit("/", 1)[1])
            not_found = (YAHOO_FIXTURES / "chart-404-not-found.json").read_bytes()
            answer = self.charts.get(symbol, (404, not_found))
            if isinstance(answer, list):
                answer = answer.pop(0) if len(answer) > 1 else answer[0]
            status, body = answer
            if isinstance(body, Exception):
                raise body
            return _response(request, status, _in_period(body, parse_qs(urlsplit(request.url).query)))
        # The cookie (fc.yahoo.com), consent and quoteSummary pages: nothing recorded, 404.
        return _response(request, 404, b'{"finance":{"result":null,"error":{"code":"Not Found"}}}')

    def close(self):
        pass

    def chart_requests(self, symbol: str) -> list[tuple[str, float | None]]:
        return [(u, t) for u, t in self.requests if f"/v8/finance/chart/{symbol}?" in u]


def _in_period(body: bytes, query: dict[str, list[str]]) -> bytes:
    """A recorded chart cut to the days in [period1, period2); other bodies as they are."""
    try:
        chart = json.loads(body)
        result = chart["chart"]["result"][0]
        stamps = result["timestamp"]
        first, end = int(query["period1"][0]), int(query["period2"][0])
    except (ValueError, KeyError, IndexError, TypeError):
        return body
    keep = [i for i, t in enumerate(stamps) if first <= t < end]
    result["timestamp"] = [stamps[i] for i in keep]
    for block in result["indicators"]["quote"] + result["indicators"].get("adjclose", []):
        for key, values in block.items():
            block[key] = [values[i] for i in keep]
    return json.dumps(chart).encode()


def _response(request, status: int, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code, response.reason = status, http.HTTPStatus(status).phrase
    response._content = body
    response.headers["Content-Type"] = "application/json;charset=utf-8"
    response.encoding = "utf-8"
    response.url, response.request = request.url, request
    return response


@pytest.fixture
def yahoo(monkeypatch) -> FakeYahoo:
    """Put a FakeYahoo under yfinance for one test; nothing leaves the process.

    yfinance's URLs are fixed (https://query2.finance.yahoo.com/...) and its default
    curl_cffi session cannot be pointed at a local server without TLS, but yfinance accepts a
    requests Session: the fake is that session's transport, so all of yfinance runs (cookie,
    crumb, timezone lookup, chart parsing), and only the bytes are recorded.
    """
    # yfinance keeps process-wide state: one YfData (session, cookie, crumb), an in-memory
    # response cache, and timezone and cookie caches on disk. Each test gets fresh ones and
    # writes nothing to the user's cache folder.
    monkeypatch.setattr(yf_data.SingletonMeta, "_instances", {})
    monkeypatch.setattr(yf_cache._TzCacheManager, "_tz_cache", yf_cache._TzCacheDummy())
    monkeypatch.setattr(yf_cache._CookieCacheManager, "_Cookie_cache", yf_cache._CookieCacheDummy())
    fake = FakeYahoo()
    fake.session = requests.Session()
    fake.session.mount("https://", fake)
    fake.session.mount("http://", fake)
    yf_data.YfData(session=fake.session)  # the session every yf.Ticker now uses
    yield fake
    yf_data.YfData.cache_get.cache_clear()
