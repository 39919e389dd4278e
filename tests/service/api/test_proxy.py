"""The compose file's proxy (docker/nginx.conf) run by a real nginx on this machine, in front
of a real API behind keys: it forwards the API (keys included), serves neither /admin/* nor
/metrics, and answers a client's burst beyond its rate with 429s.

Translated, and nothing else: the Docker DNS resolver and the `api` host become the local API
server's address; nginx listens on a free loopback port; its pid and temporary files go to
this test's folder. Skips, saying so, without an nginx binary (.ci/run installs one).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tests.service.api.conftest import settings_for
from tests.service.api.live import live_server
from tests.support.servers import free_port
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[3]
KEY = "admin-key-for-the-proxy-test-0123456789"
BURSTER = "127.0.0.2"  # the client address that bursts


def local_config(api_base: str, port: int, folder: Path) -> Path:
    text = (ROOT / "docker/nginx.conf").read_text()
    for old, new in (("resolver 127.0.0.11 valid=10s ipv6=off;", ""),
                     ("http://api:8000", api_base), ("listen 8000;", f"listen 127.0.0.1:{port};")):
        assert old in text, f"docker/nginx.conf no longer holds {old!r}: update this test"
        text = text.replace(old, new)
    temp = "".join(f"    {kind}_temp_path {folder / kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = text.replace("http {\n", "http {\n" + temp, 1)
    config = folder / "nginx.conf"
    config.write_text(text)
    return config


@contextlib.contextmanager
def nginx(config: Path, port: int) -> Iterator[str]:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                       else None)
    if binary is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light; .ci/run does)")
    folder = config.parent
    with open(folder / "nginx.log", "w") as log:
        process = subprocess.Popen([binary, "-p", str(folder), "-c", str(config), "-g",
                                    f"daemon off; pid {folder / 'nginx.pid'};"],
                                   stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def answers() -> bool:
            assert process.poll() is None, (folder / "nginx.log").read_text()
            try:
                httpx.get(f"{base}/health", timeout=1)
            except httpx.HTTPError:
                return False
            return True

        wait_until(answers, 30, "nginx answering", every_s=0.05)
        yield base
    finally:
        process.terminate()
        process.wait(10)


def test_the_proxy_forwards_the_api_hides_admin_and_metrics_and_limits_bursts(gmlfm,
                                                                                tmp_path):
    settings = settings_for(gmlfm.models_dir, api_keys=SecretStr(f"admin:{KEY}"))
    port = free_port()
    with live_server(settings) as api, \
            nginx(local_config(api, port, tmp_path), port) as proxy:
        key = {"authorization": f"Bearer {KEY}"}
        assert httpx.get(f"{proxy}/health").status_code == 200
        assert httpx.get(f"{proxy}/users").status_code == 401  # the API's keys still hold
        assert httpx.get(f"{proxy}/users", headers=key).status_code == 200  # and pass through
        for path, method in (("/admin/reload", "POST"), ("/metrics", "GET")):
            assert httpx.request(method, f"{proxy}{path}", headers=key).status_code == 404
            assert httpx.request(method, f"{api}{path}", headers=key).status_code == 200
        # the burst comes from an address of its own (all of 127/8 is loopback), whose
        # bucket the calls above have not touched
        other = httpx.HTTPTransport(local_address=BURSTER)
        with httpx.Client(base_url=proxy, transport=other) as client:
            statuses = [client.get("/health").status_code for _ in range(150)]
            assert statuses.count(200) >= 40 and statuses.count(429) > 0, statuses
            assert set(statuses) == {200, 429}
            wait_until(lambda: client.get("/health").status_code == 200, 10,
                       "a request let through again (the rate, not a ban)", every_s=0.05)
