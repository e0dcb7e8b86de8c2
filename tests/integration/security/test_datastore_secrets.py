"""etcd with client certificates and a password: the CLI and the agent work; no secret leaks.

Everything runs inside one throwaway network namespace: an etcd that demands
a client certificate signed by the test's CA (``--client-cert-auth
--trusted-ca-file``) and, once auth is enabled, a user and password; then
``gingham apply``/``get``, a failing command with a wrong password, and an
agent (``gingham node run``) for a few seconds. The password and the private
keys must appear in no output, no error and no log.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gingham.lab import lab as labmod
from tests.integration.faults import tools

pytestmark = [pytest.mark.integration, pytest.mark.etcd]

PASSWORD = "Pw-9f3c1d7e-secret"
WRONG = "Wrong-77aa12-secret"
MANIFEST = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: secret-test, labels: {a: b}}
spec: {nets: [198.51.100.0/28]}
"""


def _openssl(pki: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=pki, check=True, capture_output=True)


def _make_pki(pki: Path) -> None:
    _openssl(pki, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=gingham-secrets-ca", "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    (pki / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    # etcd 3.4's JSON gateway answers HTTP 400 ("CommonName of client sending a request
    # against gateway will be ignored") to a client certificate with a CN: the client's has none.
    for name, subject in (("server", "/CN=server"), ("client", "/O=gingham-client")):
        _openssl(pki, "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                 "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
        _openssl(pki, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "1", "-extfile", "ext", "-out", f"{name}.crt")  # fmt: skip


class Env:
    def __init__(self, netns: str, pki: Path, base: Path) -> None:
        self.netns, self.pki, self.base = netns, pki, base

    def url(self, password: str | None = PASSWORD, cert: bool = True) -> str:
        q = f"cacert={self.pki / 'ca.crt'}"
        if cert:
            q += f"&cert={self.pki / 'client.crt'}&key={self.pki / 'client.key'}"
        if password is not None:
            q += f"&user=root&password={password}"
        return f"etcds://127.0.0.1:2379?{q}"

    def gingham(
        self, url: str, *args: str, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(tools.nsenter(self.netns, labmod.gingham_binary(), "--datastore", url,
                                            *args), input=input, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip

    def etcdctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(tools.nsenter(
            self.netns, "etcdctl", "--endpoints", "https://127.0.0.1:2379",
            "--cacert", str(self.pki / "ca.crt"), "--cert", str(self.pki / "client.crt"),
            "--key", str(self.pki / "client.key"), *args),
            capture_output=True, text=True, timeout=30, check=False,
            env={**os.environ, "ETCDCTL_API": "3"})  # fmt: skip

    def secrets(self) -> list[str]:
        keys = [(self.pki / f"{n}.key").read_text() for n in ("client", "server", "ca")]
        # a line from the middle of each private key: enough to spot any part of one
        return [PASSWORD, WRONG] + [k.splitlines()[5] for k in keys]


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    if shutil.which("openssl") is None or shutil.which("etcdctl") is None:
        pytest.skip("openssl and etcdctl needed")
    base = Path(tempfile.mkdtemp(prefix="gingham-secrets-"))
    netns = f"ght{os.getpid()}-1-sec"
    proc = None
    try:
        with tools.throwaway_netns([netns]):
            pki = base / "pki"
            pki.mkdir()
            _make_pki(pki)
            log = open(base / "etcd.log", "wb")  # noqa: SIM115
            proc = subprocess.Popen(tools.nsenter(
                netns, "etcd", "--name", "sec", "--data-dir", str(base / "data"),
                "--listen-client-urls", "https://127.0.0.1:2379",
                "--advertise-client-urls", "https://127.0.0.1:2379",
                "--listen-peer-urls", "http://127.0.0.1:2380",
                "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                "--initial-cluster", "sec=http://127.0.0.1:2380",
                "--cert-file", str(pki / "server.crt"), "--key-file", str(pki / "server.key"),
                "--client-cert-auth", "--trusted-ca-file", str(pki / "ca.crt"),
                "--log-level", "warn"), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)  # fmt: skip
            log.close()
            e = Env(netns, pki, base)
            tools.wait_until(lambda: e.etcdctl("endpoint", "health").returncode == 0, 30,
                             "etcd with client-cert auth healthy")  # fmt: skip
            for args in (["user", "add", f"root:{PASSWORD}"], ["role", "add", "root"],
                         ["user", "grant-role", "root", "root"], ["auth", "enable"]):  # fmt: skip
                r = e.etcdctl(*args)
                assert r.returncode == 0, r.stderr
            yield e
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)


def _clean(env: Env, *texts: str) -> None:
    for text in texts:
        for secret in env.secrets():
            assert secret not in text, f"a secret was printed: ...{secret[:6]}... in {text[:300]!r}"


def test_apply_and_get_with_client_certificate_and_password(env: Env) -> None:
    r = env.gingham(env.url(), "apply", "-f", "-", input=MANIFEST)
    assert r.returncode == 0, r.stderr
    _clean(env, r.stdout, r.stderr)
    for fmt in ("yaml", "json", "table"):
        got = env.gingham(env.url(), "get", "globalnetworkset", "secret-test", "-o", fmt)
        assert got.returncode == 0, got.stderr
        assert "secret-test" in got.stdout
        _clean(env, got.stdout, got.stderr)


@pytest.mark.parametrize(
    ("what", "kwargs"),
    [("wrong password", {"password": WRONG}), ("no password", {"password": None}),
     ("no client certificate", {"cert": False})],
)  # fmt: skip
def test_refusals_are_clear_and_print_no_secret(
    env: Env, what: str, kwargs: dict[str, object]
) -> None:
    r = env.gingham(env.url(**kwargs), "get", "globalnetworkset", "-o", "yaml")  # type: ignore[arg-type]
    assert r.returncode != 0, f"{what}: accepted"
    assert "Traceback" not in r.stderr
    assert r.stderr.strip(), f"{what}: no error message"
    _clean(env, r.stdout, r.stderr)


def test_agent_logs_and_metrics_carry_no_secret(env: Env) -> None:
    log_path = env.base / "agent.log"
    run_dir = env.base / "run"
    with open(log_path, "wb") as log:
        agent = subprocess.Popen(
            tools.nsenter(env.netns, labmod.gingham_binary(), "--datastore", env.url(), "node",
                          "run", "--name", "sechost", "--health-port", "9099"),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "GINGHAM_RUN_DIR": str(run_dir)},
        )  # fmt: skip
    try:
        tools.wait_until(lambda: _http(env, "/readyz") == "ok", 30, "agent ready")
        metrics = _http(env, "/metrics")
        assert "gingham_" in metrics
        _clean(env, metrics)
    finally:
        os.killpg(agent.pid, signal.SIGTERM)
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()
        subprocess.run(tools.nsenter(env.netns, "nft", "delete", "table", "inet", "gingham"),
                       capture_output=True, check=False)  # fmt: skip
    _clean(env, log_path.read_text(errors="replace"))


def _http(env: Env, path: str) -> str:
    code = (
        "import sys, urllib.request\n"
        "try:\n"
        f"    print(urllib.request.urlopen('http://127.0.0.1:9099{path}', timeout=2).read().decode())\n"
        "except Exception as exc:\n"
        "    print('error', exc)\n"
    )
    r = tools.run_py(env.netns, code)
    time.sleep(0)
    return r.stdout.strip()
