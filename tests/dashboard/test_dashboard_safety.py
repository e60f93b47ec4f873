"""The dashboard changes nothing and reads nothing it was not given: it listens on
127.0.0.1 unless told otherwise (and warns then), no request writes to a store, paths
and query parameters are checked, and the page loads nothing from elsewhere."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from starlette.testclient import TestClient
from support.dashboard import awkward_run, trained_run, two_goals_run

import populace.dashboard as dashboard
from populace.dashboard.app import create_app
from populace.dashboard.data import Source
from populace.store import StoreError, open_reader, open_store

# every route, as the page asks for it
PATHS = ["/", "/static/dashboard.js", "/static/dashboard.css", "/static/plotly-basic.min.js",
         "/api/runs", "/api/runs/0/overview", "/api/runs/0/poll?results=0&events=0",
         "/api/runs/0/poll?results=3&events=1&since=0", "/api/runs/0/series",
         "/api/runs/0/series?points=100", "/api/runs/0/events?kind=exploit&member=0",
         "/api/runs/0/lineage/0", "/api/runs/0/lineage/2", "/api/runs/0/curve",
         "/api/runs/0/front", "/api/runs/0/front?step=4", "/api/runs/0/strategy"]


def _state(path) -> tuple[str, float]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns


def test_no_request_writes_to_a_sqlite_store(tmp_path):
    path = tmp_path / "run.db"
    trained_run(open_store(path)).close()
    before = _state(path)
    c = TestClient(create_app([Source(0, str(path))]))
    for p in PATHS:
        assert c.get(p).status_code == 200, p
    for method in ("post", "put", "patch", "delete"):
        assert getattr(c, method)("/api/runs/0/overview").status_code == 405
    assert _state(path) == before


def test_no_request_writes_to_a_postgresql_store():
    from support.postgres import schema_url

    store = trained_run(open_store(schema_url()))

    def dump() -> str:
        return json.dumps([store.members(), store.results(), store.events()], default=str)

    before = dump()
    c = TestClient(create_app([Source(0, store.url)]))
    for p in PATHS:
        assert c.get(p).status_code == 200, p
    assert dump() == before
    # the session itself refuses writes, whatever statement a reader sends
    reader = open_reader(store.url)
    with pytest.raises(StoreError, match="read-only"):
        with reader.driver.read() as cur:
            cur.execute("DELETE FROM events")
    with pytest.raises(StoreError, match="read-only"):
        reader.driver.write().__enter__()
    reader.close()
    assert dump() == before
    store.close()


def test_a_reader_creates_no_store_and_refuses_to_write(tmp_path):
    with pytest.raises(StoreError, match="no such file"):
        open_reader(tmp_path / "none.db")
    assert not (tmp_path / "none.db").exists()
    path = tmp_path / "run.db"
    trained_run(open_store(path)).close()
    reader = open_reader(path)
    with pytest.raises(StoreError):
        with reader.driver.read() as cur:
            cur.execute("DELETE FROM events")
    reader.close()


def test_paths_and_query_parameters_are_checked(tmp_path):
    path = tmp_path / "run.db"
    trained_run(open_store(path)).close()
    (tmp_path / "secret.txt").write_text("secret")
    c = TestClient(create_app([Source(0, str(path))]))
    for p in ["/static/../app.py", "/static/%2e%2e%2fapp.py", "/static/..%2f..%2fsecret.txt",
              "/static/index.html", "/static/data.py", "/static/", "/api/runs/1/overview",
              "/api/runs/-1/overview", "/api/runs/x/overview", f"/static/{tmp_path}/secret.txt",
              "/api/runs/0/lineage/99", "/api/runs/0/lineage/-1", "/etc/passwd",
              "/api/runs/0/../../secret.txt"]:
        r = c.get(p)
        assert r.status_code == 404, p
        assert "secret" not in r.text or "secret.txt" in p and r.status_code == 404
    for p in ["/api/runs/0/poll?results=-1", "/api/runs/0/poll?results=1e3",
              "/api/runs/0/poll?events=%3Cscript%3E", "/api/runs/0/poll?since=nan",
              "/api/runs/0/poll?since=-5", "/api/runs/0/series?points=5",
              "/api/runs/0/series?points=99999999999", "/api/runs/0/events?kind=<script>",
              "/api/runs/0/events?member=a", "/api/runs/0/events?limit=0",
              "/api/runs/0/front?step=x", "/api/runs/0/poll?results=9" + "9" * 30]:
        r = c.get(p)
        assert r.status_code == 400, p
        assert r.headers["content-type"].startswith("application/json"), p
        assert "<script>" not in r.text, p


def test_the_page_loads_nothing_from_elsewhere(tmp_path):
    path = tmp_path / "run.db"
    trained_run(open_store(path)).close()
    c = TestClient(create_app([Source(0, str(path))]))
    page = c.get("/")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "http" not in page.text.replace("http-equiv", "")  # no URL of another host
    script = c.get("/static/dashboard.js").text
    assert "http://" not in script and "https://" not in script
    # the charts' bundle is the package's own, with its licence beside it
    from importlib import resources

    static = resources.files("populace.dashboard").joinpath("static")
    assert static.joinpath("LICENSE.plotly.txt").read_text().startswith("MIT License")


def test_a_request_naming_another_host_is_refused(tmp_path):
    path = tmp_path / "run.db"
    trained_run(open_store(path)).close()
    app = create_app([Source(0, str(path))], allowed_hosts=["127.0.0.1", "localhost"])
    c = TestClient(app, base_url="http://127.0.0.1:8080")
    assert c.get("/api/runs").status_code == 200
    assert c.get("/api/runs", headers={"host": "evil.example"}).status_code == 400


def test_it_binds_127_0_0_1_and_warns_on_any_other_host(tmp_path):
    path = tmp_path / "run.db"
    awkward_run(open_store(path)).close()
    started = dashboard.start([path], port=0)
    try:
        assert started.url.startswith("http://127.0.0.1:")
        assert started._socket.getsockname()[0] == "127.0.0.1"
        with urllib.request.urlopen(started.url + "api/runs", timeout=10) as r:
            assert json.load(r)["runs"][0]["status"]["failed"] == 1
    finally:
        started.stop()
    assert dashboard.exposed("127.0.0.1") is None and dashboard.exposed("localhost") is None
    assert dashboard.exposed("::1") is None
    assert "anyone who reaches this port" in dashboard.exposed("0.0.0.0")
    with pytest.warns(UserWarning, match="anyone who reaches this port reads the runs"):
        exposed = dashboard.start([path], host="0.0.0.0", port=0)
    exposed.stop()


def test_the_command_serves_until_interrupted_and_warns_when_exposed(tmp_path):
    path = tmp_path / "run.db"
    two_goals_run(open_store(path)).close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "populace.cli", "dashboard", str(path),
                             str(tmp_path / "b.db"), "--host", "0.0.0.0", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs", timeout=5) as r:
                    runs = json.load(r)["runs"]
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert [r["state"] for r in runs] == ["training", "waiting"]
    finally:
        proc.send_signal(2)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f":{port}/" in out and "anyone who reaches this port reads the runs" in err
    # a port already taken is refused with a message, not a traceback
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "populace.cli", "dashboard", str(path),
                               "--port", str(taken)], capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 2 and "cannot listen" in done.stderr, done.stderr
