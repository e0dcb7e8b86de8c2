""".ci/install-deps: it installs what is missing, and stops and disables only the services of
packages it installed in that run, never the machine owner's (etcd, FRR, BIRD already there).
And every program the lab, the tests and bench/ run comes from a package it lists.

The script runs for real, with the package and service tools it calls replaced on PATH
by small stand-ins that keep their state in files (dpkg's database, systemd's unit states):
nothing on this machine is installed, stopped or disabled.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / ".ci" / "install-deps"

STUBS = {
    "dpkg-query": r"""
fmt=""; pkg=""
for a in "$@"; do case $a in -W) ;; -f=*) fmt=${a#-f=} ;; *) pkg=$a ;; esac; done
if [[ -n $pkg ]]; then
    grep -qx -- "$pkg" "$S/installed" && { printf 'install ok installed'; exit 0; }
    echo "dpkg-query: no packages found matching $pkg" >&2; exit 1
fi
while read -r p; do printf 'ii |%s\n' "$p"; done <"$S/installed"
""",
    "apt-get": r"""
echo "apt-get $*" >>"$S/calls"
[[ $1 == update ]] && exit 0
[[ -e $INSTALL_DEPS_POLICY ]] && cat "$INSTALL_DEPS_POLICY" >"$S/policy-during-install"
for a in "$@"; do
    case $a in -*|install) continue ;; esac
    echo "$a" >>"$S/installed"
    grep "^$a " "$S/pulls" 2>/dev/null | cut -d' ' -f2- | tr ' ' '\n' >>"$S/installed" || true
done
""",
    "dpkg": r"""
[[ $1 == -L ]] && cat "$S/files/$2" 2>/dev/null
exit 0
""",
    "systemctl": r"""
echo "systemctl $*" >>"$S/calls"
case $1 in
is-active) grep -qx -- "$3" "$S/active" ;;
is-enabled) grep -qx -- "$3" "$S/enabled" ;;
disable)
    for f in enabled active; do grep -vx -- "$3" "$S/$f" >"$S/$f.tmp" || true; mv "$S/$f.tmp" "$S/$f"; done ;;
list-units)
    pat=${!#}
    while read -r u; do [[ $u == $pat ]] && echo "$u loaded active running x"; done <"$S/instances"
    exit 0 ;;
esac
""",
    "pg_lsclusters": r"""
[[ -e $S/pg-online ]] && echo "15 main 5432 online postgres /var/lib/postgresql/15/main log"
exit 0
""",
    "pg_ctlcluster": r"""
echo "pg_ctlcluster $*" >>"$S/calls"
rm -f "$S/pg-online"
""",
}


def packages() -> list[str]:
    m = re.search(r"^PKGS=\((.*?)\)", SCRIPT.read_text(), re.S | re.M)
    assert m, "no PKGS=(...) in .ci/install-deps"
    return m.group(1).split()


class FakeDebian:
    def __init__(self, base: Path, installed: list[str]) -> None:
        self.base = base
        self.state = base / "state"
        (self.state / "files").mkdir(parents=True)
        self.bin = base / "bin"
        self.bin.mkdir()
        for name, body in STUBS.items():
            stub = self.bin / name
            stub.write_text(f'#!/bin/bash\nS="$STUB_STATE"\n{body}')
            stub.chmod(0o755)
        self.policy = base / "policy-rc.d"
        self.record = base / "record.log"
        self.write("installed", installed)
        for name in ("calls", "pulls", "enabled", "active", "instances"):
            self.write(name, [])

    def write(self, name: str, lines: list[str]) -> None:
        (self.state / name).write_text("".join(f"{line}\n" for line in lines))

    def lines(self, name: str) -> list[str]:
        path = self.state / name
        return path.read_text().splitlines() if path.exists() else []

    def ships(self, package: str, *units: str) -> None:
        self.write(f"files/{package}", [f"/lib/systemd/system/{u}" for u in units]
                   + [f"/usr/share/doc/{package}/copyright"])  # fmt: skip

    def run(self) -> subprocess.CompletedProcess[str]:
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "STUB_STATE": str(self.state),
               "INSTALL_DEPS_POLICY": str(self.policy), "INSTALL_DEPS_RECORD": str(self.record)}
        return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                               timeout=120, check=False)  # fmt: skip

    def disabled(self) -> list[str]:
        return [c.split()[-1] for c in self.lines("calls") if c.startswith("systemctl disable")]


@pytest.fixture
def debian(tmp_path: Path) -> FakeDebian:
    missing = {"docker.io", "bird2", "postgresql", "iputils-ping"}
    fake = FakeDebian(tmp_path, [p for p in packages() if p not in missing])
    fake.write("pulls", ["postgresql postgresql-15 postgresql-common"])
    fake.ships("etcd-server", "etcd.service")
    fake.ships("frr", "frr.service", "frr@.service")
    fake.ships("docker.io", "docker.service", "docker.socket")
    fake.ships("bird2", "bird.service")
    fake.ships("postgresql-15", "postgresql@.service")
    fake.ships("postgresql-common", "postgresql.service")
    # Debian enables a service as it installs it; the owner's etcd and FRR run already.
    fake.write("enabled", ["etcd.service", "frr.service", "docker.service", "docker.socket",
                           "bird.service", "postgresql.service"])
    fake.write("active", ["etcd.service", "frr.service", "postgresql@15-main.service"])
    fake.write("instances", ["postgresql@15-main.service", "frr@x.service"])
    (fake.state / "pg-online").touch()
    return fake


def test_installs_what_is_missing_and_disables_only_what_it_installed(debian: FakeDebian) -> None:
    proc = debian.run()
    assert proc.returncode == 0, proc.stderr
    installs = [c for c in debian.lines("calls") if c.startswith("apt-get install")]
    assert len(installs) == 1
    assert set(installs[0].split()) >= {"docker.io", "bird2", "postgresql", "iputils-ping"}
    assert not set(installs[0].split()) & {"etcd-server", "frr", "nftables"}
    # no service started during the install
    assert debian.lines("policy-during-install") == ["#!/bin/sh", "exit 101"]
    assert not debian.policy.exists()  # removed again: it was not the machine's
    disabled = debian.disabled()
    assert set(disabled) == {"docker.socket", "docker.service", "bird.service",
                             "postgresql.service", "postgresql@15-main.service"}  # fmt: skip
    # the socket first, or a connection to it would start the service again
    assert disabled.index("docker.socket") < disabled.index("docker.service")
    # the owner's: not even asked about
    touched = " ".join(debian.lines("calls"))
    assert "etcd.service" not in touched and "frr" not in touched
    assert debian.lines("enabled") == ["etcd.service", "frr.service"]
    assert debian.lines("active") == ["etcd.service", "frr.service"]
    assert "pg_ctlcluster 15 main stop" in debian.lines("calls")  # postgresql came now
    record = debian.record.read_text()
    assert re.search(r"^\S+ installed: .*\bbird2\b.*\bpostgresql-15\b", record, re.M)
    assert "disabled and stopped docker.socket (from docker.io, installed now)" in record
    assert "stopped PostgreSQL cluster 15/main" in record
    assert "install-deps: disabled and stopped bird.service" in proc.stdout


def test_with_nothing_missing_it_touches_nothing(tmp_path: Path) -> None:
    fake = FakeDebian(tmp_path, packages())
    fake.ships("etcd-server", "etcd.service")
    fake.write("enabled", ["etcd.service"])
    fake.write("active", ["etcd.service"])
    (fake.state / "pg-online").touch()
    proc = fake.run()
    assert proc.returncode == 0, proc.stderr
    assert fake.lines("calls") == []
    assert proc.stdout == ""
    assert not fake.record.exists()
    assert (fake.state / "pg-online").exists()  # the owner's PostgreSQL keeps running


def test_a_policy_of_the_machines_own_is_left_in_place(debian: FakeDebian) -> None:
    debian.policy.write_text("#!/bin/sh\nexit 0\n")
    assert debian.run().returncode == 0
    assert debian.policy.read_text() == "#!/bin/sh\nexit 0\n"
    # services of what it installed are disabled all the same
    assert "bird.service" in debian.disabled()


# Every program the lab, the tests or bench/ run by name, and its Debian package.
TOOLS = {
    "ip": "iproute2", "bridge": "iproute2", "ss": "iproute2",
    "nft": "nftables", "conntrack": "conntrack",
    "bird": "bird2", "birdc": "bird2", "vtysh": "frr",
    "gobgp": "gobgpd", "gobgpd": "gobgpd",
    "etcd": "etcd-server", "etcdctl": "etcd-client",
    "iperf3": "iperf3", "tcpdump": "tcpdump", "openssl": "openssl",
    "busybox": "busybox-static", "podman": "podman", "runc": "runc",
    "dockerd": "docker.io", "docker": "docker.io", "containerd": "containerd",
    "iptables": "iptables", "iptables-save": "iptables", "ip6tables-save": "iptables",
    "ps": "procps", "sysctl": "procps", "kill": "procps", "killall": "psmisc",
    "ping": "iputils-ping", "systemd-analyze": "systemd", "systemctl": "systemd",
    "jq": "jq",
}
# Debian's Essential packages (coreutils, util-linux, mount, tar, bash...): always there.
ESSENTIAL = {"nsenter", "umount", "mount", "chroot", "cat", "cp", "sh", "bash", "sleep", "tar",
             "env", "echo", "true", "timeout", "install", "id", "sync", "unshare", "dpkg",
             "dpkg-query", "stdbuf",
             "python3"}  # not Essential, but the tests themselves run in it


def _argv_head(elements: list[ast.expr]) -> str | None:
    """The program an argv list literal runs (through nsenter or ``ip netns exec`` too)."""
    values = [e.value if isinstance(e, ast.Constant) and isinstance(e.value, str) else None
              for e in elements]  # fmt: skip
    if not values or values[0] is None:
        return None
    if values[0] == "nsenter":
        rest = [v for v in values[1:] if v is not None and not v.startswith("-")]
        return rest[0] if rest else None
    if values[:3] == ["ip", "netns", "exec"] and len(values) > 4:
        return values[4]
    return values[0]


def programs_run() -> dict[str, set[str]]:
    """Program -> files: heads of argv lists handed to a call, and shutil.which() names."""
    data_calls = {"parametrize", "sampled_from", "choice", "choices", "Choice", "join",
                  "startswith", "endswith", "append", "print_table", "invoke"}
    out: dict[str, set[str]] = {}
    for top in ("src", "tests", "bench"):
        for path in (ROOT / top).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name in data_calls:
                    continue
                if name == "which" and node.args and isinstance(node.args[0], ast.Constant):
                    out.setdefault(str(node.args[0].value), set()).add(path.name)
                    continue
                for arg in node.args:
                    if isinstance(arg, (ast.List, ast.Tuple)):
                        head = _argv_head(arg.elts)
                        if head and re.fullmatch(r"[a-z][a-z0-9.+_-]*", head):
                            out.setdefault(head, set()).add(path.name)
    return out


def test_every_program_run_has_a_listed_package() -> None:
    listed = set(packages())
    for tool, package in TOOLS.items():
        assert package in listed, f"{tool}: {package} not in PKGS"
    assert "iputils-ping" in listed
    unmapped = {p: sorted(files) for p, files in programs_run().items()
                if p not in TOOLS and p not in ESSENTIAL and shutil.which(p)}  # fmt: skip
    assert not unmapped, f"programs run without a package in TOOLS: {unmapped}"


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="not a Debian machine")
def test_tools_map_to_the_package_that_ships_them() -> None:
    """Where the package is installed, its program is there and is that package's."""
    status = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Status}\\n",
                             *sorted(set(TOOLS.values()))], capture_output=True, text=True,
                            check=False).stdout  # fmt: skip
    present = {line.split()[0] for line in status.splitlines() if "install ok installed" in line}
    paths: dict[str, str] = {}
    for tool, package in TOOLS.items():
        if package not in present:
            continue
        path = shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")
        assert path, f"{package} is installed but {tool} is not on PATH"
        paths[tool] = os.path.realpath(path)
    # one dpkg -S for all: usr-merged files are listed under /bin or /usr/bin, either
    queries = sorted({q for real in paths.values() for q in (real, real.removeprefix("/usr"))})
    found = subprocess.run(["dpkg", "-S", *queries], capture_output=True, text=True,
                           check=False).stdout  # fmt: skip
    owners: dict[str, set[str]] = {}
    for line in found.splitlines():
        pkgs, _, where = line.partition(": ")
        owners.setdefault(where.strip(), set()).update(
            p.strip().split(":")[0] for p in pkgs.split(","))
    for tool, real in paths.items():
        got = owners.get(real, set()) | owners.get(real.removeprefix("/usr"), set())
        assert TOOLS[tool] in got, f"{tool} ({real}) is not from {TOOLS[tool]}: {sorted(got)}"
