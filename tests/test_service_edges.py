"""Hostile bodies, auth before the body, and the API contract, against a real uvicorn server."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time

import pytest
import requests
from servers import free_port, process
from test_service import bars_body, registry, tiny_config_module, two_ticker_bars_module  # noqa: F401

KEY = "edge-test-key"
LIMIT = 2_000_000  # the default FORECASTER_MAX_BODY_BYTES
BODY_TIMEOUT_S = 2.0


@contextlib.contextmanager
def uvicorn(home, *args: str, **env: str):
    """A real `uvicorn --factory service.main:create_app` in its own process group; yields (url, process)."""
    port = free_port()
    environment = {
        **os.environ, "FORECASTER_HOME": str(home), "FORECASTER_SOURCE": "cache",
        "FORECASTER_RELOAD_INTERVAL_S": "0", **env,
    }  # fmt: skip
    for inherited in ("MLFLOW_TRACKING_URI", "PROMETHEUS_MULTIPROC_DIR"):
        environment.pop(inherited, None)
    command = [sys.executable, "-m", "uvicorn", "--factory", "service.main:create_app", "--port", str(port)]
    log = home.parent / f"uvicorn-{port}.log"
    with process(
        [*command, *args], log, env=environment, ready_url=f"http://127.0.0.1:{port}/readyz"
    ) as proc:
        yield f"http://127.0.0.1:{port}", proc


@pytest.fixture(scope="module")
def server(registry):  # noqa: F811
    with uvicorn(registry, FORECASTER_API_KEYS=KEY, FORECASTER_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S)) as running:
        yield running


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def raw_post(
    url: str, path: str, headers: dict, chunks, timeout: float = 30.0
) -> tuple[int, bytes, float, int]:
    """POST with a chunked body streamed from `chunks` in a thread; the answer is read while it streams.

    Returns (status, response head and body, seconds to the answer, body bytes the client sent).
    """
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sent = [0]
    start = time.monotonic()
    sock.sendall(head.encode())

    def stream():
        with contextlib.suppress(OSError):  # the server hangs up once it has answered
            for chunk in chunks:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent[0] += len(chunk)
            sock.sendall(b"0\r\n\r\n")

    sender = threading.Thread(target=stream, daemon=True)
    sender.start()
    answer = b""
    with contextlib.suppress(OSError):
        while not _complete(answer):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    elapsed = time.monotonic() - start
    sock.close()
    sender.join(timeout=10)
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, answer, elapsed, sent[0]


def _complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = [
        line.split(b":")[1] for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")
    ]
    return len(body) >= int(length[0]) if length else False


def endless(size: int, chunk: bytes = b"[" + b"1.0," * 16383):
    """`size` bytes of a JSON-looking body, in 64 KiB chunks."""
    for _ in range(size // len(chunk)):
        yield chunk


def test_chunked_body_over_the_limit_is_413_without_growing_the_worker(server):
    url, proc = server
    before = peak = rss_bytes(proc.pid)
    result = {}
    worker = threading.Thread(
        target=lambda: result.update(
            answer=raw_post(url, "/v1/forecast", {"X-API-Key": KEY}, endless(150_000_000))
        )
    )
    worker.start()
    while worker.is_alive():
        peak = max(peak, rss_bytes(proc.pid))
        time.sleep(0.02)
    status, answer, elapsed, sent = result["answer"]
    assert status == 413 and b"limit" in answer, answer
    assert sent < 20_000_000, f"the server read {sent} bytes before answering"
    assert peak - before < 10_000_000, f"worker RSS grew by {(peak - before) / 1e6:.1f} MB"
    assert requests.get(f"{url}/healthz", timeout=5).ok


def test_no_key_and_a_huge_chunked_body_is_401_before_the_body_is_read(server):
    url, proc = server
    before = rss_bytes(proc.pid)
    status, answer, elapsed, sent = raw_post(url, "/v1/forecast", {}, endless(150_000_000))
    assert (
        status == 401 and b"X-API-Key" in answer and b"WWW-Authenticate" in answer.replace(b"www-a", b"WWW-A")
    )
    assert elapsed < 1.0 and sent < 20_000_000
    assert rss_bytes(proc.pid) - before < 10_000_000


def test_a_trickling_body_is_cut_off_with_408_at_the_deadline(server):
    url, _ = server

    def trickle():
        for _ in range(100):
            yield b" "
            time.sleep(0.5)

    status, answer, elapsed, _ = raw_post(url, "/v1/forecast", {"X-API-Key": KEY}, trickle(), timeout=20)
    assert status == 408 and b"not received within 2 s" in answer
    assert BODY_TIMEOUT_S - 0.1 <= elapsed < BODY_TIMEOUT_S + 2


def test_a_declared_length_over_the_limit_is_413_unread(server):
    url, _ = server
    r = requests.post(
        f"{url}/v1/forecast",
        data=b"x" * (LIMIT + 1),
        headers={"X-API-Key": KEY, "content-type": "application/json"},
    )
    assert r.status_code == 413 and f"of {LIMIT + 1} bytes" in r.json()["detail"]


@pytest.mark.parametrize("body", [b"{not json", b'{"ticker": 5}', b"\xff\xfe"])
def test_no_key_is_401_whatever_the_body(server, body):
    url, _ = server
    r = requests.post(f"{url}/v1/forecast", data=body, headers={"content-type": "application/json"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "APIKey"


def test_large_bodies_are_validated_off_the_loop_with_the_same_answers(server, two_ticker_bars_module):  # noqa: F811
    url, _ = server
    headers = {"X-API-Key": KEY, "content-type": "application/json"}

    def post(body: dict, indent: int | None = None):
        data = json.dumps(body, indent=indent).encode()
        return requests.post(f"{url}/v1/forecast", data=data, headers=headers, timeout=30), len(data)

    bars = bars_body(two_ticker_bars_module, n=300)
    (small, small_size), (large, large_size) = post({"bars": bars}), post({"bars": bars}, indent=8)
    assert small_size < 64 * 1024 < large_size  # the same bars, parsed by FastAPI and in a thread
    assert small.status_code == large.status_code == 200, (small.text, large.text)
    assert small.json()["steps"] == large.json()["steps"]
    bars[250]["high"] = bars[250]["low"] / 2  # a bad bar deep in a large body: 422 naming it
    r, _ = post({"bars": bars}, indent=8)
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "bars", 250] and "< low" in error["msg"]
    r = requests.post(f"{url}/v1/forecast", data=b'{"bars": [' + b" " * 70_000, headers=headers, timeout=30)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


def _healthz_counts(folder) -> dict[str, float]:
    """Each worker's count of `GET /healthz` 200s, read from its own metrics file."""
    from prometheus_client.multiprocess import MultiProcessCollector

    counts = {}
    for path in folder.glob("counter_*.db"):
        (metric,) = [m for m in MultiProcessCollector.merge([str(path)]) if m.name == "http_requests"]
        counts[path.stem.split("_")[1]] = sum(
            s.value for s in metric.samples if s.name.endswith("_total") and s.labels["route"] == "/healthz"
        )
    return counts


def test_metrics_sum_the_counts_of_every_worker_and_label_docs_routes(registry, tmp_path):  # noqa: F811
    from concurrent.futures import ThreadPoolExecutor

    with uvicorn(registry, "--workers", "2", TMPDIR=str(tmp_path)) as (url, _):
        (folder,) = tmp_path.glob("forecaster-metrics-*")  # one folder for the server's two workers
        sent, deadline = 0, time.monotonic() + 120
        with ThreadPoolExecutor(8) as pool:
            # New connections, 8 at a time, until both workers have answered some. On a busy machine
            # the second worker may still be starting while the first takes every connection: wait
            # for it rather than give up after a fixed count.
            while sent == 0 or len(_healthz_counts(folder)) < 2:
                assert time.monotonic() < deadline, (
                    f"one worker answered all {sent}: {_healthz_counts(folder)}"
                )
                codes = list(
                    pool.map(lambda _: requests.get(f"{url}/healthz", timeout=10).status_code, range(20))
                )
                assert codes == [200] * 20
                sent += 20
        # A response can reach the client just before its worker counts it: let the counts settle.
        settle = time.monotonic() + 10
        while sum(_healthz_counts(folder).values()) < sent and time.monotonic() < settle:
            time.sleep(0.1)
        per_worker = _healthz_counts(folder)
        assert len(per_worker) == 2 and min(per_worker.values()) > 0 and sum(per_worker.values()) == sent
        for path in ("/docs", "/redoc", "/openapi.json", "/static-offline-docs/swagger-ui.css"):
            assert requests.get(f"{url}{path}", timeout=10).status_code == 200
        for _ in range(4):  # whichever worker answers the scrape, it reports the whole server
            text = requests.get(f"{url}/metrics", timeout=10).text
            assert f'http_requests_total{{method="GET",route="/healthz",status="200"}} {float(sent)}' in text
        for route in ("/docs", "/redoc", "/openapi.json", "/static-offline-docs/{path}"):
            assert f'route="{route}",status="200"' in text
        assert 'route="unmatched"' not in text
        assert text.count("model_info{") == 1 and 'version="1"} 1.0' in text


def test_idle_and_half_sent_request_heads_are_closed_at_the_header_deadline(registry, tmp_path):  # noqa: F811
    """`forecast serve`'s uvicorn: connections that never finish a request head are closed after
    FORECASTER_HEADER_TIMEOUT_S (408 for half a head); a slow but timely head is still served."""
    from test_service_resilience import api_process, wait_for

    log = tmp_path / "api.log"
    with api_process(registry, log, FORECASTER_HEADER_TIMEOUT_S="1.5") as (url, proc):
        wait_for(f"{url}/readyz", proc, log)
        host, port = url.removeprefix("http://").split(":")
        start = time.monotonic()
        idle = [socket.create_connection((host, int(port)), timeout=15) for _ in range(20)]
        half = [socket.create_connection((host, int(port)), timeout=15) for _ in range(20)]
        for sock in half:
            sock.sendall(b"POST /v1/forecast HTTP/1.1\r\nHost: x\r\nContent-Ty")
        timely = socket.create_connection((host, int(port)), timeout=15)
        for part in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"Connection: close\r\n\r\n"):
            timely.sendall(part)
            time.sleep(0.4)
        assert read_until_closed(timely)[0].startswith(b"HTTP/1.1 200")
        assert requests.get(f"{url}/healthz", timeout=5).ok  # the worker answers meanwhile

        for sock in idle:
            answer, at = read_until_closed(sock)
            assert answer == b"" and 1.4 < at - start < 6, (answer, at - start)
        for sock in half:
            answer, at = read_until_closed(sock)
            assert answer.startswith(b"HTTP/1.1 408") and b"not received within 1.5 s" in answer, answer
            assert 1.4 < at - start < 6


def read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed it."""
    answer = b""
    with contextlib.suppress(ConnectionResetError):
        while data := sock.recv(65536):
            answer += data
    sock.close()
    return answer, time.monotonic()
