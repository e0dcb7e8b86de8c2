"""The driver under Debian's Python and the real neutron_lib: entry point, bind_port, the
port hooks, the callback registry, the resync, a missing datastore (under_neutron.py).

Neutron runs under /usr/bin/python3 (Debian's python3-neutron), which the project's
venv cannot import: the test makes a venv from /usr/bin/python3 with
--system-site-packages and installs this checkout into it with pip, as an operator
installs ``gingham[openstack]`` into Neutron's Python, then runs the script there
against a real sqlite datastore.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gingham.datastore import open_datastore

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
DEBIAN_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).with_name("under_neutron.py")
PORT = "bbbbbbbb-1111-4111-8111-000000000001"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "GINGHAM_DATASTORE")}


@pytest.fixture(scope="module")
def neutron_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    probe = subprocess.run([DEBIAN_PYTHON, "-c", "import neutron.db.provisioning_blocks"],
                           capture_output=True, env=_clean_env(), check=False) \
        if Path(DEBIAN_PYTHON).exists() else None
    if probe is None or probe.returncode != 0:
        pytest.skip("python3-neutron is not installed for /usr/bin/python3 "
                    "(apt-get install --no-install-recommends python3-neutron)")
    venv = tmp_path_factory.mktemp("neutron-venv")
    subprocess.run([DEBIAN_PYTHON, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, env=_clean_env())
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-e", f"{REPO}[openstack]"],
                         capture_output=True, text=True, env=_clean_env(), check=False)
    assert pip.returncode == 0, f"pip install into Neutron's Python failed:\n{pip.stderr[-3000:]}"
    return str(venv / "bin" / "python")


@pytest.fixture(scope="module")
def seen(neutron_python: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("neutron-run")
    url = f"sqlite://{tmp / 'gingham.db'}"
    open_datastore(url, create=True).close()
    run = subprocess.run([neutron_python, str(SCRIPT), url, f"sqlite://{tmp / 'none.db'}"],
                         capture_output=True, text=True, env=_clean_env(), cwd=tmp,
                         timeout=240, check=False)
    assert run.returncode == 0, run.stderr[-4000:]
    out: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return out


def test_the_project_venv_is_not_neutrons() -> None:
    """The reason for the separate venv: this interpreter cannot load Neutron."""
    assert sys.executable != DEBIAN_PYTHON


def test_neutron_finds_the_driver_by_its_entry_point(seen: dict[str, Any]) -> None:
    assert seen["entry_point"] == "gingham.openstack.mech_driver:GinghamMechanismDriver"


def test_bind_port(seen: dict[str, Any]) -> None:
    assert seen["bound_without_node"] is None  # no gingham agent on the host
    assert seen["bound"] == ["seg-1", "tap", {"port_filter": True}, None]
    assert seen["bound_vlan"] is None
    assert seen["bound_without_port_security"] is None
    assert seen["bound_without_datastore"] is None


def test_a_bound_port_becomes_an_endpoint_and_goes_active(seen: dict[str, Any]) -> None:
    (wep,) = seen["endpoints"]
    assert wep["spec"]["interfaceName"] == "tap" + PORT[:11]
    assert wep["spec"]["ipNetworks"] == ["198.19.5.10/32"]
    assert seen["holder"] == [f"openstack.{PORT}", "host-a"]
    assert seen["pools"] == [{"assignmentMode": "Manual", "blockSize": 26,
                              "cidr": "198.19.5.0/24", "disabled": False}]
    assert seen["profiles"] == ["openstack-sg-aaaaaaaa-0000-4000-8000-000000000001"]
    # a provisioning block while binding, completed once the endpoint is written
    assert seen["blocks"][:2] == [["add", PORT, "port", "L2"], ["complete", PORT, "port", "L2"]]
    assert seen["status_only_wrote"] is False


def test_refusals_are_neutron_errors_with_gingham_s_reason(seen: dict[str, Any]) -> None:
    refused = seen["refused_update"]
    assert "BadRequest" in refused["bases"] and "port security is disabled" in refused["message"]
    rule = seen["refused_rule"]
    assert rule["error"] == "CallbackFailure" and "protocol 0" in rule["message"]
    assert "stateless" in seen["refused_group"]["message"]
    missing = seen["unavailable"]
    assert "ServiceUnavailable" in missing["bases"]
    assert "no gingham datastore at" in missing["message"]


def test_security_group_events_rewrite_profiles(seen: dict[str, Any]) -> None:
    assert seen["web_ingress"] == [{
        "action": "Allow", "destination": {"ports": [80]}, "ipVersion": 4, "protocol": "TCP",
        "source": {"selector": "has(sg.gingham.dev/aaaaaaaa-0000-4000-8000-000000000002)"}}]
    assert seen["client_profile_after_delete"] is False


def test_resync_and_delete(seen: dict[str, Any]) -> None:
    assert seen["resync"]["failed"] == [] and seen["resync"]["activate"] == [PORT]
    assert seen["endpoints_after_delete"] == 0 and seen["holder_after_delete"] is False
