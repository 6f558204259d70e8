"""Load test of a real JupyterHub: N students log in, start a server and run a notebook at the same time.

    python tests/bench_hub.py                                   # 4 students, notebook 00, fast mode
    python tests/bench_hub.py --users 8                         # more students
    python tests/bench_hub.py --notebook notebooks/05_lora.ipynb --json hub.json

The script starts JupyterHub itself, on 127.0.0.1 only: `jupyterhub` from PyPI, configurable-http-proxy
(npm, or Debian's node-configurable-http-proxy), the dummy authenticator (one shared password) and the
local-process spawner. Nothing reaches the network. Each simulated student, in a thread of its own and all
starting together, does what a browser does:

1. logs in through the hub's login form (`/hub/login`, with its XSRF cookie),
2. starts a server (`POST /hub/api/users/NAME/server`) and waits until the hub reports it ready,
3. opens JupyterLab (`/user/NAME/lab`, which runs the OAuth hand-off between the server and the hub),
4. reads the notebook through the contents API, starts a kernel session (`POST /user/NAME/api/sessions`)
   and sends every code cell over the kernel's websocket (`/api/kernels/ID/channels`), in order,
   waiting for each reply, and records every output; an error output or a refused request is a failure.

Measured per student: the peak resident memory of the student's process tree (the single-user server
and its kernel, sampled every 100 ms, so a spike shorter than that can be missed), the time from login
to the first output of the first cell, the time to run the notebook, the CPU seconds used, and failures.
The capacity table then adds the server's measured memory to each notebook's full-run kernel peak
(the README's table, measured by tests/bench_notebooks.py) and divides each node size by it.

Students are real Unix users when this runs as root (created for the run and removed after it), so that
the test can also check file isolation; the course's Python may live under a directory other users
cannot enter (pyenv under /root, mode 0700): each server then runs in a private mount namespace in which
that directory shows only the Python installation (and the course, if it lies there too). Without root
every student runs as the current user (SimpleLocalProcessSpawner): servers and kernels are still
isolated by the hub's authorization, files are not. Not a test: pytest does not collect it
(tests/test_hub.py is the small version that CI runs).
"""
import argparse
import datetime
import json
import os
import platform
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import nbformat
import psutil
import requests
import websocket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE_GB = (8, 16, 64)
SYSTEM_RESERVE_MB = 1024   # the operating system and, on Kubernetes, kubelet and its daemons (an assumption)
PROXY_PACKAGE_HINT = ("install configurable-http-proxy: `npm install -g configurable-http-proxy@5.3.0`, "
                      "or Debian's `apt-get install node-configurable-http-proxy` (see .ci/run)")


class HubError(RuntimeError):
    """The hub or a student's server did not do what a browser would have been served."""


def find_proxy():
    """Path of the configurable-http-proxy command, or None."""
    return shutil.which("configurable-http-proxy")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def blocked_ancestor(path):
    """(directory, child) for the first ancestor of `path` that other users cannot enter, else None."""
    parts = os.path.abspath(path).strip("/").split("/")
    for i in range(len(parts)):
        here = "/" + "/".join(parts[:i])
        if not os.stat(here).st_mode & stat.S_IXOTH:
            return here, "/" + "/".join(parts[:i + 1])
    return None


def isolation_mode():
    """("system-users", why) when students can be separate Unix users here, else ("shared-user", why)."""
    if os.geteuid() != 0:
        return "shared-user", "not root: the spawner cannot run a server as another Unix user"
    missing = [c for c in ("useradd", "userdel", "unshare", "setpriv") if not shutil.which(c)]
    if missing:
        return "shared-user", f"no {', '.join(missing)} on this machine to create users and switch to them"
    blocked = {p: blocked_ancestor(p) for p in (sys.prefix, ROOT)}
    for path in blocked:
        parts = os.path.abspath(path).strip("/").split("/")
        closed = [d for d in ("/" + "/".join(parts[:i]) for i in range(len(parts) + 1))
                  if not os.stat(d).st_mode & stat.S_IXOTH]
        if len(closed) > 1:
            return "shared-user", f"{path} lies below {len(closed)} directories that other users cannot enter"
    if any(blocked.values()):
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                               capture_output=True, text=True)
        if probe.returncode:
            return "shared-user", (f"{sorted({b[0] for b in blocked.values() if b})} cannot be entered by other "
                                   f"users and no private mount namespace can be made: {probe.stderr.strip()}")
        return "system-users", "root: one Unix user per student, Python shown to them in a private mount namespace"
    return "system-users", "root: one Unix user per student"


HUB_CONFIG = '''\
# written by tests/bench_hub.py for one load test; everything listens on 127.0.0.1
import os, pwd
from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner

settings = {settings!r}
c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = settings["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = settings["hub_port"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%d" % settings["proxy_api_port"]
c.ConfigurableHTTPProxy.command = [settings["proxy"]]
c.ConfigurableHTTPProxy.auth_token = settings["proxy_token"]
c.JupyterHub.db_url = "sqlite:///" + os.path.join(settings["work"], "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(settings["work"], "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = os.path.join(settings["work"], "jupyterhub.pid")
c.JupyterHub.log_level = "INFO"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = settings["password"]
c.Authenticator.allowed_users = set(settings["users"])
c.JupyterHub.services = [{{"name": "loadtest", "api_token": settings["service_token"]}}]
c.JupyterHub.load_roles = [{{"name": "loadtest", "services": ["loadtest"],
                            "scopes": ["list:users", "read:users", "admin:server_state", "servers"]}}]
c.Spawner.cmd = [settings["python"], "-m", "jupyterhub.singleuser"]
c.Spawner.args = settings["args"]
c.Spawner.environment = settings["environment"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180


class NamespacedSpawner(LocalProcessSpawner):
    """LocalProcessSpawner, with each server switched to its student's Unix user by setpriv inside a private
    mount namespace in which a directory other users cannot enter (here {blocked}) shows only what the
    course needs from it: the Python installation, and the course when it lies there."""

    def make_preexec_fn(self, name):
        home = pwd.getpwnam(name).pw_dir
        return lambda: os.chdir(home)

    async def start(self):
        user = pwd.getpwnam(self.user.name)
        self.cmd = ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", settings["ns_script"],
                    "namespace", str(user.pw_uid), str(user.pw_gid)] + settings["cmd"]
        return await super().start()


if settings["mode"] == "shared-user":
    c.JupyterHub.spawner_class = SimpleLocalProcessSpawner
    c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(settings["work"], "home", "{{username}}")
elif settings["ns_script"]:
    c.JupyterHub.spawner_class = NamespacedSpawner
else:
    c.JupyterHub.spawner_class = LocalProcessSpawner
'''


def namespace_script(work):
    """The /bin/sh script that, as root in a fresh mount namespace, covers each directory that other users
    cannot enter with an empty tmpfs, binds back the parts the course needs, then becomes the student
    ($1 uid, $2 gid) and runs the server (the remaining arguments)."""
    hits = {}
    for path in (sys.prefix, ROOT):
        hit = blocked_ancestor(path)
        if hit:
            hits.setdefault(hit[0], set()).add(hit[1])
    if not hits:
        return ""
    lines = ["set -e", 'uid=$1 gid=$2', "shift 2"]
    for i, (top, children) in enumerate(sorted(hits.items())):
        for j, child in enumerate(sorted(children)):
            stash = os.path.join(work, "namespace", f"{i}-{j}")
            os.makedirs(stash, exist_ok=True)
            lines.append(f"mount --bind '{child}' '{stash}'")
        lines.append(f"mount -t tmpfs -o mode=0755,size=1m course-view '{top}'")
        for j, child in enumerate(sorted(children)):
            stash = os.path.join(work, "namespace", f"{i}-{j}")
            lines.append(f"mkdir -p '{child}' && mount --bind '{stash}' '{child}'")
    lines.append('exec setpriv --reuid="$uid" --regid="$gid" --init-groups "$@"')
    return "\n".join(lines)


class Hub:
    """A JupyterHub on 127.0.0.1 with `users` allowed, started in a fresh folder; a context manager.

    As root the students are Unix users created for it (and removed on exit), so that files are isolated too.
    """

    def __init__(self, users, mode=None, environment=None):
        self.proxy = find_proxy()
        if not self.proxy:
            raise HubError(f"configurable-http-proxy is not on PATH: {PROXY_PACKAGE_HINT}")
        if mode not in (None, "system-users", "shared-user"):
            raise ValueError(f"mode must be 'system-users', 'shared-user' or None (decide here), not {mode!r}")
        self.mode, self.mode_reason = isolation_mode() if mode is None else (mode, "asked for")
        self.names = [f"pcs{os.getpid() % 100000}{secrets.token_hex(2)}{i}" for i in range(len(users))]
        self.alias = dict(zip(users, self.names))      # "a" -> the hub and Unix name of student a
        self.password = secrets.token_urlsafe(12)
        self.service_token = secrets.token_hex(32)
        self.environment = {"PEFTCOURSE_FAST": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                            "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false",
                            "PATH": os.path.dirname(sys.executable) + ":/usr/local/bin:/usr/bin:/bin",
                            "LANG": "C.UTF-8", **(environment or {})}
        self.work, self.process, self.created_users, self.homes = None, None, [], {}

    def home(self, alias):
        return self.homes[self.alias[alias]]

    # ---- start and stop -------------------------------------------------------------------------
    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _start(self):
        self.work = tempfile.mkdtemp(prefix="peftcourse-hub-")
        os.chmod(self.work, 0o711)            # students reach their homes below it, and nothing else
        os.makedirs(os.path.join(self.work, "home"), mode=0o711)
        for name in self.names:
            home = os.path.join(self.work, "home", name)
            if self.mode == "system-users":
                subprocess.run(["useradd", "--no-create-home", "--home-dir", home, "--shell", "/usr/sbin/nologin",
                                "--user-group", name], check=True, capture_output=True)
                self.created_users.append(name)
                os.makedirs(home, mode=0o700)
                os.chown(home, pwd.getpwnam(name).pw_uid, pwd.getpwnam(name).pw_gid)
                os.chmod(home, 0o700)
                # nbgitpuller clones the course from this checkout, which root owns; git refuses to read another
                # user's repository unless the user's own (global) config names it. A hub's students clone over
                # https, where the question does not arise.
                gitconfig = os.path.join(home, ".gitconfig")
                with open(gitconfig, "w") as f:
                    f.write(f"[safe]\n\tdirectory = {os.path.join(ROOT, '.git')}\n\tdirectory = {ROOT}\n")
                os.chown(gitconfig, pwd.getpwnam(name).pw_uid, pwd.getpwnam(name).pw_gid)
            else:
                os.makedirs(home, mode=0o700)
            self.homes[name] = home
        self.port, hub_port, api_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        ns = namespace_script(self.work) if self.mode == "system-users" else ""
        settings = {"port": self.port, "hub_port": hub_port, "proxy_api_port": api_port, "proxy": self.proxy,
                    "proxy_token": secrets.token_hex(32), "work": self.work, "password": self.password,
                    "users": self.names, "service_token": self.service_token, "python": sys.executable,
                    "environment": self.environment, "mode": self.mode, "ns_script": ns,
                    "cmd": [sys.executable, "-m", "jupyterhub.singleuser"],
                    # one shared user that is root: Jupyter's server refuses root unless told
                    "args": ["--allow-root"] if self.mode == "shared-user" and os.geteuid() == 0 else []}
        blocked = sorted({b[0] for b in (blocked_ancestor(sys.prefix), blocked_ancestor(ROOT)) if b})
        config = os.path.join(self.work, "jupyterhub_config.py")
        with open(config, "w") as f:
            f.write(HUB_CONFIG.format(settings=settings, blocked=", ".join(blocked) or "none"))
        os.chmod(config, 0o600)
        self.log_path = os.path.join(self.work, "jupyterhub.log")
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", config], cwd=self.work,
                                        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HubError(f"JupyterHub exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/hub/api/", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise HubError(f"JupyterHub did not answer on {self.url} within 60 s:\n{self.log_tail()}")

    def log_tail(self, lines=40):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def close(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)      # the hub stops every server and its proxy
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process is not None:
            self._log.close()
        for name in self.created_users:                   # anything a student left running
            for p in psutil.process_iter(["username"]):
                if p.info["username"] == name:
                    try:
                        p.kill()
                    except psutil.Error:
                        pass
            subprocess.run(["userdel", name], capture_output=True)
        self.created_users = []
        if self.work:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None

    # ---- what the hub knows ---------------------------------------------------------------------
    def api(self, method, path, **kw):
        return requests.request(method, f"{self.url}/hub/api{path}", timeout=30,
                                headers={"Authorization": f"token {self.service_token}"}, **kw)

    def server_pid(self, name):
        r = self.api("GET", f"/users/{name}")
        r.raise_for_status()
        server = r.json()["servers"].get("", {})
        return server.get("state", {}).get("pid")

    def hub_and_proxy_mb(self):
        """Resident memory of the hub process and of the proxy (MB)."""
        hub = psutil.Process(self.process.pid)
        proxies = [p for p in hub.children() if "configurable-http-proxy" in " ".join(p.cmdline())]
        return round(hub.memory_info().rss / 2**20), round(sum(p.memory_info().rss for p in proxies) / 2**20)


class Student:
    """One browser's worth of requests: the hub login cookie, the server's OAuth cookie, and a token."""

    def __init__(self, hub, alias):
        self.hub, self.alias, self.name = hub, alias, hub.alias[alias]
        self.http = requests.Session()
        self.token = None
        self.base = f"{hub.url}/user/{self.name}"

    def _xsrf(self, path="/hub/"):
        for cookie in self.http.cookies:
            if cookie.name == "_xsrf" and path.startswith(cookie.path or "/"):
                return cookie.value
        return ""

    def login(self):
        self.http.get(f"{self.hub.url}/hub/login", timeout=30).raise_for_status()
        r = self.http.post(f"{self.hub.url}/hub/login", allow_redirects=False, timeout=60,
                           data={"username": self.name, "password": self.hub.password, "_xsrf": self._xsrf()})
        if r.status_code != 302:
            raise HubError(f"{self.name}: login answered {r.status_code}, expected a 302 redirect")
        r = self.http.post(f"{self.hub.url}/hub/api/users/{self.name}/tokens", timeout=30,
                           headers={"X-XSRFToken": self._xsrf()}, json={"note": "load test", "expires_in": 3600})
        if r.status_code != 201:
            raise HubError(f"{self.name}: token request answered {r.status_code}: {r.text[:200]}")
        self.token = r.json()["token"]

    def auth(self):
        return {"Authorization": f"token {self.token}"}

    def spawn(self, timeout=180):
        r = self.http.post(f"{self.hub.url}/hub/api/users/{self.name}/server", headers=self.auth(), timeout=60)
        if r.status_code not in (201, 202):
            raise HubError(f"{self.name}: spawn answered {r.status_code}: {r.text[:200]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            user = self.http.get(f"{self.hub.url}/hub/api/users/{self.name}", headers=self.auth(), timeout=30)
            server = user.json().get("servers", {}).get("")
            if server and server.get("ready"):
                return
            if not server:
                raise HubError(f"{self.name}: the server stopped while starting:\n{self.hub.log_tail()}")
            time.sleep(0.25)
        raise HubError(f"{self.name}: the server was not ready after {timeout} s")

    def open_lab(self):
        """The browser's way in: /user/NAME/lab redirects through the hub's OAuth and lands on JupyterLab."""
        r = self.http.get(f"{self.base}/lab", timeout=60)
        if r.status_code != 200 or "jupyter-config-data" not in r.text:
            raise HubError(f"{self.name}: JupyterLab answered {r.status_code} at {r.url}")

    def rest(self, method, path, **kw):
        r = self.http.request(method, f"{self.base}/api{path}", headers=self.auth(), timeout=60, **kw)
        if r.status_code >= 400:
            raise HubError(f"{self.name}: {method} {path} answered {r.status_code}: {r.text[:200]}")
        return r.json() if r.content else None

    def git_pull(self, repo, branch, target="peftcourse", timeout=300):
        """Follows an nbgitpuller link, as the student's browser does: the server clones `repo` into
        ~/`target` (or merges new commits into an earlier clone); returns nbgitpuller's last message."""
        query = {"repo": repo, "branch": branch, "targetpath": target}
        r = self.http.get(f"{self.base}/git-pull", params={**query, "urlpath": "lab"}, headers=self.auth(),
                          timeout=60)
        if r.status_code != 200:
            raise HubError(f"{self.name}: the nbgitpuller link answered {r.status_code}")
        with self.http.get(f"{self.base}/git-pull/api", params=query, headers=self.auth(), timeout=timeout,
                           stream=True) as r:
            for line in r.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    event = json.loads(line[5:])
                    if event.get("phase") == "error":
                        raise HubError(f"{self.name}: nbgitpuller: {event.get('message')}: "
                                       f"{str(event.get('output', ''))[-300:]}")
                    if event.get("phase") == "finished":
                        return event
        raise HubError(f"{self.name}: nbgitpuller stopped without finishing")

    def upload(self, path, name):
        """Put a notebook into the student's home through the contents API (as JupyterLab's upload does)."""
        with open(path) as f:
            content = json.load(f)
        self.rest("PUT", f"/contents/{name}", json={"type": "notebook", "format": "json", "content": content})

    def start_kernel(self, name):
        session = self.rest("POST", "/sessions", json={"path": name, "name": name, "type": "notebook",
                                                       "kernel": {"name": "python3"}})
        return session["id"], session["kernel"]["id"]

    def connect(self, kernel_id):
        ws_url = self.base.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
        return KernelChannel(websocket.create_connection(ws_url, header=[f"Authorization: token {self.token}"],
                                                         timeout=300), self.name)

    def stop(self):
        r = self.http.delete(f"{self.hub.url}/hub/api/users/{self.name}/server", headers=self.auth(), timeout=60)
        if r.status_code not in (202, 204):
            raise HubError(f"{self.name}: stopping the server answered {r.status_code}")


class KernelChannel:
    """Executes code over a kernel's websocket (Jupyter messaging protocol 5.3, JSON frames)."""

    def __init__(self, ws, username):
        self.ws, self.username, self.session = ws, username, uuid.uuid4().hex

    def execute(self, code, on_output=None, timeout=600):
        """Runs `code`; returns (outputs, error): outputs as nbformat-like dicts, error the ename or None."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.username,
                       "session": self.session, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                       "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        outputs, error, replied, idle = [], None, False, False
        deadline = time.monotonic() + timeout
        while not (replied and idle):
            self.ws.settimeout(max(1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind in ("stream", "display_data", "execute_result", "error"):
                outputs.append({"output_type": kind, **msg["content"]})
                if on_output:
                    on_output()
                if kind == "error":
                    error = msg["content"]["ename"]
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
            elif kind == "execute_reply":
                replied = True
                if msg["content"]["status"] != "ok" and error is None:
                    error = msg["content"].get("ename", msg["content"]["status"])
        return outputs, error

    def close(self):
        self.ws.close()


def output_text(outputs):
    """The text a student sees from a cell's outputs (stream text and text/plain)."""
    return "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in outputs)


class TreeMemory:
    """Samples, every `interval` s, the summed RSS of each student's server and its descendants."""

    def __init__(self, hub, interval=0.1):
        self.hub, self.interval = hub, interval
        self.pids, self.peak, self.server_peak, self.kernel_peak, self.cpu = {}, {}, {}, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, name, pid):
        self.pids[name] = pid

    def _sample(self):
        for name, pid in list(self.pids.items()):
            try:
                server = psutil.Process(pid)
                procs = [server] + server.children(recursive=True)
            except psutil.Error:
                continue
            total = kernels = cpu = 0
            for p in procs:
                try:
                    rss, times = p.memory_info().rss, p.cpu_times()
                except psutil.Error:
                    continue
                total += rss
                kernels += rss if p.pid != pid else 0
                cpu += times.user + times.system
            self.peak[name] = max(self.peak.get(name, 0), total)
            self.server_peak[name] = max(self.server_peak.get(name, 0), total - kernels)
            self.kernel_peak[name] = max(self.kernel_peak.get(name, 0), kernels)
            self.cpu[name] = max(self.cpu.get(name, 0), cpu)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def course_branch():
    """The branch this checkout is on, or None (a detached HEAD, or no git): what an nbgitpuller link names."""
    try:
        out = subprocess.run(["git", "-C", ROOT, "symbolic-ref", "--short", "-q", "HEAD"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def run_student(hub, alias, notebook, start, memory, keep_running=False):
    """One student's whole visit; returns a dict of times (s, from login), outputs and failures."""
    student = Student(hub, alias)
    result = {"student": alias, "user": student.name, "failures": [], "cells": 0}
    first_output = []
    start.wait()
    t0 = time.perf_counter()
    since = lambda: round(time.perf_counter() - t0, 2)   # noqa: E731
    try:
        student.login()
        result["login_s"] = since()
        student.spawn()
        result["server_ready_s"] = since()
        memory.watch(student.name, hub.server_pid(student.name))
        student.open_lab()
        result["lab_open_s"] = since()
        branch = course_branch()
        if branch:     # the course's notebooks as a class gets them: the nbgitpuller link
            student.git_pull("file://" + ROOT, branch)
            name = "peftcourse/" + os.path.relpath(os.path.abspath(notebook), ROOT)
            result["notebooks_from"] = f"nbgitpuller link (branch {branch})"
        else:          # not a branch checkout: JupyterLab's upload, through the contents API
            name = os.path.basename(notebook)
            student.upload(notebook, name)
            result["notebooks_from"] = "upload"
        result["notebooks_s"] = since()
        nb = nbformat.reads(json.dumps(student.rest("GET", f"/contents/{name}")["content"]), as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        result["code_cells"] = len(code)
        result["committed_checked"] = {i: output_text(c.outputs) for i, c in enumerate(code)   # nbval's exact cells
                                       if "nbval-check-output" in c.metadata.get("tags", [])}
        session_id, kernel_id = student.start_kernel(name)
        result["kernel_started_s"] = since()
        channel = student.connect(kernel_id)
        run_start = time.perf_counter()
        result["outputs"] = []
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            outputs, error = channel.execute(cell.source,
                                             on_output=lambda: first_output or first_output.append(since()))
            result["cells"] += 1
            result["outputs"].append(output_text(outputs))
            if error:
                result["failures"].append(f"cell {result['cells']}: {error}")
                break
        result["run_s"] = round(time.perf_counter() - run_start, 2)
        channel.close()
        memory._sample()                                  # the CPU time just before the kernel goes
        student.rest("DELETE", f"/sessions/{session_id}")
        if not keep_running:
            student.stop()
    except (HubError, requests.RequestException, websocket.WebSocketException, OSError, KeyError) as e:
        result["failures"].append(f"{type(e).__name__}: {e}")
    if result["failures"]:
        result["hub_log"] = hub.log_tail(60)               # the hub's and the servers' own account
    result["first_output_s"] = first_output[0] if first_output else None
    result["total_s"] = since()
    result["peak_mb"] = round(memory.peak.get(student.name, 0) / 2**20)
    result["server_peak_mb"] = round(memory.server_peak.get(student.name, 0) / 2**20)
    result["kernel_peak_mb"] = round(memory.kernel_peak.get(student.name, 0) / 2**20)
    result["cpu_s"] = round(memory.cpu.get(student.name, 0), 1)
    return result


def run_load(hub, aliases, notebook, keep_running=False):
    """Every student of `aliases` runs `notebook` at the same moment; returns their results in order."""
    start, results = threading.Event(), {}
    with TreeMemory(hub) as memory:
        threads = [threading.Thread(target=lambda a=a: results.update({a: run_student(
            hub, a, notebook, start, memory, keep_running)})) for a in aliases]
        for t in threads:
            t.start()
        start.set()
        for t in threads:
            t.join()
    return [results[a] for a in aliases]


RECORD = os.path.join(ROOT, "data", "notebook_bench.json")


def full_run_peaks(path=None):
    """{notebook: full-run kernel peak MB}, measured by tests/bench_notebooks.py: from `path` (its --json list
    or its --record file), else from data/notebook_bench.json when it exists, else from the README's table."""
    path = path or (RECORD if os.path.exists(RECORD) else os.path.join(ROOT, "README.md"))
    with open(path) as f:
        text = f.read()
    if path.endswith(".json"):
        data = json.loads(text)
        runs = data["notebooks"].items() if isinstance(data, dict) else [(r["notebook"], r) for r in data]
        peaks = {name.removesuffix(".ipynb"): r["peak_mb"] for name, r in runs if r.get("mode", "full") == "full"}
        if not peaks:
            raise ValueError(f"{path}: no full-run peak in it; record one with "
                             "`python tests/bench_notebooks.py --write --record` (fast runs do not count)")
        return peaks
    rows = re.findall(r"^\s*\| (\d\d_\w+) \| [\d,]+ s \| ([\d,]+) MB \|", text, flags=re.M)
    if not rows:
        raise ValueError(f"{path}: no table of full-run peaks ('| 00_start_here | 17 s | 521 MB |') found; "
                         "pass --peaks with a JSON from `python tests/bench_notebooks.py --json FILE`")
    return {name: int(mb.replace(",", "")) for name, mb in rows}


def capacity(server_mb, peaks, hub_mb=0, proxy_mb=0, nodes=NODE_GB):
    """Rows of (notebook, MB per student, students per node for each size in `nodes`).

    A student holds one server and one kernel (the course asks to shut a kernel down before the next); the
    node keeps SYSTEM_RESERVE_MB for itself plus the hub and the proxy when they share it (one server, TLJH)."""
    rows = []
    for name, kernel_mb in list(peaks.items()) + [("any notebook (the largest peak)", max(peaks.values()))]:
        per = server_mb + kernel_mb
        fits = [max(0, (gb * 1024 - SYSTEM_RESERVE_MB - hub_mb - proxy_mb) // per) for gb in nodes]
        rows.append((name, per, fits))
    return rows


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=4, help="simulated students at once (default 4: 2 cores)")
    ap.add_argument("--notebook", default=os.path.join(ROOT, "notebooks", "00_start_here.ipynb"))
    ap.add_argument("--json", help="write the measurements to this JSON file")
    ap.add_argument("--shared-user", action="store_true",
                    help="run every student as this script's user, even as root (no Unix users are created)")
    ap.add_argument("--peaks", help="full-run kernel peaks: a JSON of tests/bench_notebooks.py --json or --record "
                                    "(default: data/notebook_bench.json, else the README's table)")
    args = ap.parse_args(argv)
    if args.users < 1:
        ap.error(f"--users must be at least 1, got {args.users}")
    if not os.path.isfile(args.notebook):
        ap.error(f"no such notebook: {args.notebook}")
    peaks = full_run_peaks(args.peaks)
    if not find_proxy():
        print(f"configurable-http-proxy is not on PATH: {PROXY_PACKAGE_HINT}", file=sys.stderr)
        return 2
    aliases = [f"student{i + 1}" for i in range(args.users)]
    with Hub(aliases, mode="shared-user" if args.shared_user else None) as hub:
        print(f"JupyterHub on {hub.url}, {args.users} students ({hub.mode}: {hub.mode_reason}), "
              f"{os.path.basename(args.notebook)} in fast mode, {os.cpu_count()} cores: {cpu_model()}", flush=True)
        load_before = round(os.getloadavg()[0], 1)
        t0 = time.perf_counter()
        results = run_load(hub, aliases, args.notebook)
        wall = round(time.perf_counter() - t0, 1)
        load_after = round(os.getloadavg()[0], 1)
        hub_mb, proxy_mb = hub.hub_and_proxy_mb()
    print(f"\n{'student':<10} {'ready':>7} {'1st output':>11} {'run':>7} {'total':>7} {'peak':>9} "
          f"{'server':>8} {'kernel':>8} {'CPU':>7}  failures")
    for r in results:
        fmt = lambda v, unit="s": "-" if v is None else f"{v:.1f} {unit}"   # noqa: E731
        print(f"{r['student']:<10} {fmt(r.get('server_ready_s')):>7} {fmt(r['first_output_s']):>11} "
              f"{fmt(r.get('run_s')):>7} {fmt(r['total_s']):>7} {r['peak_mb']:>6,} MB {r['server_peak_mb']:>5} MB "
              f"{r['kernel_peak_mb']:>5} MB {r['cpu_s']:>5.1f} s  {'; '.join(r['failures']) or 0}")
    failures = sum(bool(r["failures"]) for r in results)
    for r in results:
        if "hub_log" in r:
            print(f"\n{r['student']} failed; the last lines of the hub's log then:\n{r['hub_log']}", file=sys.stderr)
    server_mb = max(r["server_peak_mb"] for r in results)
    print(f"\nall {args.users} done in {wall} s; failures: {failures}; hub {hub_mb} MB, proxy {proxy_mb} MB; "
          f"load average (1 min) {load_before} before, {load_after} after, on {os.cpu_count()} cores")
    print(f"\nCapacity: students per node, each holding one server ({server_mb} MB, the largest measured here) and "
          f"one kernel at its full-run peak;\n{SYSTEM_RESERVE_MB} MB kept for the system, and the hub and proxy "
          f"({hub_mb + proxy_mb} MB) on the same node")
    print(f"{'notebook':<34} {'per student':>12} " + " ".join(f"{gb:>6} GB" for gb in NODE_GB))
    table = capacity(server_mb, peaks, hub_mb, proxy_mb)
    for name, per, fits in table:
        print(f"{name:<34} {per:>9,} MB " + " ".join(f"{n:>9}" for n in fits))
    if args.json:
        for r in results:
            r.pop("outputs", None), r.pop("committed_checked", None)
        with open(args.json, "w") as f:
            json.dump({"users": args.users, "notebook": os.path.basename(args.notebook), "mode": "fast",
                       "isolation": hub.mode, "cpu": cpu_model(), "cores": os.cpu_count(), "wall_s": wall,
                       "load_average_1min": {"before": load_before, "after": load_after},
                       "failures": failures, "hub_mb": hub_mb, "proxy_mb": proxy_mb, "students": results,
                       "capacity": [{"notebook": n, "mb_per_student": p, **{f"{gb}GB": k for gb, k in zip(NODE_GB, f)}}
                                    for n, p, f in table]}, f, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
