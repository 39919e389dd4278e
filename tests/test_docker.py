"""The container files, proven without a Docker engine (none runs on these machines): the
Dockerfiles lint clean, the compose file is one `docker-compose config` accepts and wires the
services as docs/operations.md says, and the API image's dependencies carry no torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile.*"))


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (.ci/run installs it)")
    return path


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_lint_clean(dockerfile):
    done = subprocess.run([tool("hadolint"), str(dockerfile)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def compose_config(*options: str) -> dict:
    """The compose file as `docker-compose [options] config` resolves it (Debian's
    docker-compose 1.x prints YAML)."""
    yaml = pytest.importorskip("yaml")
    done = subprocess.run([tool("docker-compose"), "-f", str(ROOT / "docker-compose.yml"),
                           *options, "config"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_file_is_accepted_and_wired():
    services = compose_config()["services"]
    assert set(services) >= {"redis", "train", "api", "proxy"}
    api = services["api"]
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert api["depends_on"]["train"]["condition"] == "service_completed_successfully"
    assert api["environment"]["GMLREC_REDIS_URL"].startswith("redis://redis:")
    redis_service = services["redis"]
    assert "healthcheck" in redis_service and "--appendonly" in " ".join(redis_service["command"])
    assert "requirepass" in " ".join(redis_service["command"])  # from the secret file
    assert "ports" not in redis_service  # Redis is never published
    assert api["environment"]["GMLREC_REDIS_PASSWORD_FILE"] == "/run/secrets/redis_password"
    assert api["environment"]["GMLREC_API_KEYS_FILE"] == "/run/secrets/api_keys"
    assert services["proxy"]["ports"][0].startswith("127.0.0.1:")
    assert services["train"]["restart"] == "no"
    retrain = services["retrain"]
    assert retrain["command"][:4] == ["python", "-m", "training", "retrain"]
    assert retrain["command"][-1] == "--every" and retrain["restart"] == "unless-stopped"
    assert retrain["environment"]["GMLREC_RETRAIN_EVERY"] == "1d"
    assert retrain["depends_on"]["train"]["condition"] == "service_completed_successfully"
    assert retrain["volumes"][0] in ("models:/models", "models:/models:rw")  # it publishes


def test_monitoring_profile_is_accepted_and_wired():
    """Prometheus and Grafana start with `--profile monitoring` only; the key Prometheus sends
    to /metrics comes from a secret file named in its config, never from argv."""
    yaml = pytest.importorskip("yaml")
    services = compose_config("--profile", "monitoring")["services"]
    profiled = {name for name, service in services.items() if service.get("profiles")}
    assert profiled == {"prometheus", "grafana"}
    assert all(services[name]["profiles"] == ["monitoring"] for name in profiled)
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert [s["source"] for s in prometheus["secrets"]] == ["prometheus_key"]
    assert "ports" not in prometheus  # reached by Grafana inside the network only
    assert not any("key" in arg or "auth" in arg for arg in prometheus["command"])
    assert any(arg.startswith("--storage.tsdb.retention.time=") for arg in prometheus["command"])
    config = yaml.safe_load((ROOT / "docker/prometheus/prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["authorization"] == {"type": "Bearer",
                                    "credentials_file": "/run/secrets/prometheus_key"}
    assert job["dns_sd_configs"][0]["names"] == ["api"]  # every replica
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == \
        "/run/secrets/grafana_password"
    assert grafana["ports"][0].startswith("127.0.0.1:")
    datasource = yaml.safe_load(
        (ROOT / "docker/grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = datasource["datasources"]
    dashboard_text = (ROOT / "docker/grafana/dashboards/gmlrec.json").read_text()
    dashboard = json.loads(dashboard_text)
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {source["uid"]}
    assert "authorization" not in dashboard_text.lower() and "secret" not in dashboard_text


def test_api_image_dependencies_carry_no_torch():
    done = subprocess.run([sys.executable, str(ROOT / "docker/requirements_from_pyproject.py"),
                           str(ROOT / "pyproject.toml"), "serve"], capture_output=True,
                          text=True, check=True)
    requirements = done.stdout.split()
    assert any(r.startswith("onnxruntime") for r in requirements)
    assert not any(r.startswith("torch") for r in requirements)
    bad = subprocess.run([sys.executable, str(ROOT / "docker/requirements_from_pyproject.py"),
                          str(ROOT / "pyproject.toml"), "gpu"], capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.strip() == "error: unknown extra(s) gpu; " \
        "pyproject has train, serve, dev"
