"""A real JupyterHub on 127.0.0.1 (tests/bench_hub.py starts it): two students run notebook 00 in fast mode
at the same time through the REST and kernel APIs, and neither can open the other's server, kernels or files.

The benchmark with more students is `python tests/bench_hub.py` (README, "JupyterHub for a class")."""
import json
import os
import sys

import pytest
import requests
import websocket

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_hub  # noqa: E402

NOTEBOOK = os.path.join(bench_hub.ROOT, "notebooks", "00_start_here.ipynb")

pytestmark = pytest.mark.skipif(
    bench_hub.find_proxy() is None,
    reason=f"configurable-http-proxy is not installed, so no JupyterHub can start: {bench_hub.PROXY_PACKAGE_HINT}")


@pytest.fixture(scope="module")
def hub():
    with bench_hub.Hub(["a", "b"]) as running:
        yield running


@pytest.fixture(autouse=True)
def hub_log_on_failure(request):
    """The hub's log (servers and kernels included) follows each test; pytest shows it when the test failed."""
    yield
    if "hub" in request.fixturenames:
        print(request.getfixturevalue("hub").log_tail(80))


def test_two_students_run_notebook_00_at_once(hub):
    results = bench_hub.run_load(hub, ["a", "b"], NOTEBOOK, keep_running=True)
    for r in results:
        assert r["failures"] == [], f"student {r['student']}: {r['failures']}\n{r.get('hub_log', '')}"
        if bench_hub.course_branch():     # each student got the notebooks by the nbgitpuller link
            assert r["notebooks_from"].startswith("nbgitpuller link"), r["notebooks_from"]
            assert os.path.isfile(os.path.join(hub.home(r["student"]), "peftcourse", "notebooks",
                                               os.path.basename(NOTEBOOK))), "nbgitpuller cloned nothing"
        assert r["cells"] == r["code_cells"] > 5, f"student {r['student']} ran {r['cells']} of {r['code_cells']}"
        assert r["committed_checked"], "notebook 00 has no nbval-check-output cell left to compare with"
        for i, text in r["committed_checked"].items():
            assert r["outputs"][i] == text, f"student {r['student']}, code cell {i}: not the committed output"
        assert "fast mode: True" in "".join(r["outputs"]), "the server did not pass PEFTCOURSE_FAST=1 on"
        assert 0 < r["first_output_s"] < r["total_s"]
        # a real process tree was measured: the server alone, and a kernel that imported torch
        assert r["server_peak_mb"] > 30 and r["kernel_peak_mb"] > 150, r
        assert r["peak_mb"] >= r["server_peak_mb"] + r["kernel_peak_mb"] * 0.5
        assert r["cpu_s"] > 1


def running_student(hub, alias):
    student = bench_hub.Student(hub, alias)
    student.login()
    if hub.server_pid(student.name) is None:
        student.spawn()
    return student


def test_a_student_cannot_open_another_students_server_or_kernels(hub):
    a, b = running_student(hub, "a"), running_student(hub, "b")
    b_kernel = b.rest("POST", "/kernels", json={"name": "python3"})["id"]
    a_kernel = a.rest("POST", "/kernels", json={"name": "python3"})["id"]
    try:
        # A's token opens A's own server, so a refusal below is about B's server, not a broken token
        assert requests.get(f"{a.base}/api/kernels", headers=a.auth(), timeout=30).status_code == 200
        for path in ("/api/kernels", f"/api/kernels/{b_kernel}", "/api/contents", "/api/sessions"):
            r = requests.get(f"{b.base}{path}", headers=a.auth(), timeout=30)
            assert r.status_code == 403 and b_kernel not in r.text, f"A's token on B's {path}: {r.status_code}"
        r = requests.post(f"{b.base}/api/kernels", headers=a.auth(), json={"name": "python3"}, timeout=30)
        assert r.status_code == 403, f"A's token started a kernel on B's server: {r.status_code}"
        # A's browser (hub cookie): B's JupyterLab goes through the hub's OAuth, which refuses A
        r = a.http.get(f"{b.base}/lab", timeout=60)
        assert r.status_code == 403 and "jupyter-config-data" not in r.text, (r.status_code, r.url)
        r = a.http.get(f"{b.base}/api/kernels", timeout=30)
        assert r.status_code in (302, 403) and b_kernel not in r.text, r.status_code
        # B's kernel over its websocket with A's token
        url = b.base.replace("http://", "ws://") + f"/api/kernels/{b_kernel}/channels"
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(url, header=[f"Authorization: token {a.token}"], timeout=30)
        assert refused.value.status_code == 403
        # the hub's API: A cannot stop B's server or take a token for B
        assert requests.delete(f"{hub.url}/hub/api/users/{b.name}/server", headers=a.auth(),
                               timeout=30).status_code in (403, 404)
        assert requests.post(f"{hub.url}/hub/api/users/{b.name}/tokens", headers=a.auth(), json={},
                             timeout=30).status_code in (403, 404)
        assert hub.server_pid(b.name) is not None, "B's server stopped"
    finally:
        for s, k in ((a, a_kernel), (b, b_kernel)):
            requests.delete(f"{s.base}/api/kernels/{k}", headers=s.auth(), timeout=60)


def test_a_students_kernel_cannot_read_another_students_files(hub):
    if hub.mode != "system-users":
        pytest.skip(f"students share one Unix user here ({hub.mode_reason}), so files are not isolated; "
                    "the hub's authorization is tested above")
    a, b = running_student(hub, "a"), running_student(hub, "b")
    b_home, secret = hub.home("b"), "written by student b"
    b.rest("PUT", "/contents/secret.txt", json={"type": "file", "format": "text", "content": secret})
    kernels = {s: s.rest("POST", "/kernels", json={"name": "python3"})["id"] for s in (a, b)}
    probe = "\n".join([
        "import os, pwd",
        f"path = {os.path.join(b_home, 'secret.txt')!r}",
        "try:", "    print('read:', open(path).read())",
        "except OSError as e:", "    print('refused:', type(e).__name__)",
        "try:", f"    print('listed:', os.listdir({b_home!r}))",
        "except OSError as e:", "    print('refused:', type(e).__name__)",
        "print('user:', pwd.getpwuid(os.getuid()).pw_name)"])
    try:
        seen = {}
        for s in (a, b):
            channel = s.connect(kernels[s])
            outputs, error = channel.execute(probe, timeout=120)
            channel.close()
            assert error is None, error
            seen[s.alias] = bench_hub.output_text(outputs)
        assert seen["b"].splitlines()[0] == f"read: {secret}", seen["b"]     # the file is there, B reads it
        assert f"user: {b.name}" in seen["b"]
        assert seen["a"].splitlines()[:2] == ["refused: PermissionError", "refused: PermissionError"], seen["a"]
        assert f"user: {a.name}" in seen["a"], seen["a"]
        # and the same file through A's own server's contents API, by a path that climbs out of A's home
        rel = os.path.relpath(os.path.join(b_home, "secret.txt"), hub.home("a"))
        r = requests.get(f"{a.base}/api/contents/{rel}", headers=a.auth(), timeout=30)
        assert r.status_code in (403, 404) and secret not in r.text, r.status_code
    finally:   # not s.rest: a refusal here must not hide the failure above
        for s, k in kernels.items():
            requests.delete(f"{s.base}/api/kernels/{k}", headers=s.auth(), timeout=60)
        requests.delete(f"{b.base}/api/contents/secret.txt", headers=b.auth(), timeout=60)


def test_deploy_config_follows_the_measured_peaks():
    import yaml
    config = yaml.safe_load(open(os.path.join(bench_hub.ROOT, "deploy", "config.yaml")))
    with open(os.path.join(bench_hub.ROOT, "deploy", "bench_hub_4users.json")) as f:
        bench = json.load(f)
    mib = lambda spec: float(spec.rstrip("G")) * 1024    # noqa: E731 (KubeSpawner: G = 2**30 bytes)
    server = max(s["server_peak_mb"] for s in bench["students"])
    need = server + max(bench_hub.full_run_peaks().values())
    memory = config["singleuser"]["memory"]
    assert bench["failures"] == 0 and bench["users"] == 4 and 50 < server < 1024
    assert mib(memory["guarantee"]) >= need, f"the guarantee {memory['guarantee']} is below the measured {need} MiB"
    assert mib(memory["limit"]) > mib(memory["guarantee"])
    assert config["cull"]["enabled"] and config["cull"]["timeout"] > 0
    assert config["singleuser"]["extraEnv"]["OMP_NUM_THREADS"] == str(config["singleuser"]["cpu"]["limit"])
    tljh = open(os.path.join(bench_hub.ROOT, "deploy", "tljh.sh")).read()
    assert f"limits.memory {memory['limit']}" in tljh and f"limits.cpu {config['singleuser']['cpu']['limit']}" in tljh


def test_bench_hub_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        bench_hub.main(["--users", "0"])
    assert "--users must be at least 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench_hub.main(["--notebook", "notebooks/99_missing.ipynb"])
    assert "no such notebook: notebooks/99_missing.ipynb" in capsys.readouterr().err


def test_capacity_table_divides_each_node_by_the_measured_need(tmp_path):
    peaks = bench_hub.full_run_peaks()
    assert len(peaks) >= 13 and peaks["07_qlora"] > peaks["00_start_here"]
    rows = bench_hub.capacity(160, {"x": 840}, hub_mb=100, proxy_mb=50, nodes=(8, 16))
    assert rows[0] == ("x", 1000, [(8192 - 1024 - 150) // 1000, (16384 - 1024 - 150) // 1000])
    assert rows[-1][0].startswith("any notebook")
    readme = tmp_path / "README.md"
    readme.write_text("no table here\n")
    with pytest.raises(ValueError, match="no table of full-run peaks"):
        bench_hub.full_run_peaks(str(readme))
    record = tmp_path / "notebook_bench.json"            # tests/bench_notebooks.py --record's layout
    record.write_text(json.dumps({"notebooks": {"05_lora.ipynb": {"mode": "full", "peak_mb": 1173}}}))
    assert bench_hub.full_run_peaks(str(record)) == {"05_lora": 1173}
    listed = tmp_path / "times.json"                     # and its --json layout, where fast runs do not count
    listed.write_text(json.dumps([{"notebook": "05_lora.ipynb", "mode": "fast", "peak_mb": 600}]))
    with pytest.raises(ValueError, match="no full-run peak"):
        bench_hub.full_run_peaks(str(listed))
    assert json.loads(json.dumps(rows))            # plain numbers, for the benchmark's JSON
