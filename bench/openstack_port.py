"""OpenStack: a new Neutron port under security groups, from the API call to the VM's first response.

    .venv/bin/python bench/openstack_port.py [--quick] [--ports 20]

Needs root, python3-neutron and PostgreSQL. A private 2-host lab with its
Neutron server and the gingham mechanism driver (``gingham lab up --openstack``,
real agents, sqlite), its state under a private run directory, removed at the
end (also on error). Setup: a network and subnet (198.18.200.0/24, DHCP off),
security groups ``client`` and ``web`` (ingress TCP 80 from members of
``client``), a client VM on h1 in ``client``.

For each new port, one at a time (they are not deleted, so h2 fills up):

- t0: ``POST /v2.0/ports`` with ``binding:host_id`` h2 and group ``web``, what
  Nova asks; Neutron creates, binds (the driver's ``bind_port``) and writes the
  WorkloadEndpoint before it answers (t1);
- Nova's part, from t1: ``lab vm add`` plugs a VM namespace into the tap with
  the port's MAC and address, and a listening socket opens inside it (t2), so
  no server start-up is counted;
- the first response: a helper inside the client VM opens a new connection to
  the port's address every millisecond; t3 is the first one established (the
  clock is shared by all namespaces).

Reported: ``port_create_to_first_response`` = t3 - t0 (Nova's part included),
``neutron_create_port`` = t1 - t0, ``nova_plug`` = t2 - t1 (reported apart: the
lab's stand-in for Nova and libvirt) and ``first_response_after_plug`` =
t3 - t2 (the agent noticing the tap and programming the endpoint). Also the
lab's start-up and tear-down times. Prints one JSON object.
"""

from __future__ import annotations

import os

# A private lab run directory (see ttfr.py); must be set before gingham.lab loads.
os.environ.setdefault("GINGHAM_LAB_RUN_DIR", f"/run/gingham-bench-{os.getpid()}")

import argparse
import json
import platform
import shutil
import sys
import time
from typing import Any

from ttfr import Client, listen_in, summary_ms

PORT = 80
SUBNET = "198.18.200.0/24"


def run(n: int, lab_name: str, timeout: float) -> dict[str, Any]:
    from gingham.lab import lab as labmod
    from gingham.lab import openstack as labopenstack
    from gingham.lab import vms
    from gingham.lab.netns import netns_path
    from gingham.lab.neutron_api import NeutronAPI

    out: dict[str, Any] = {}
    client: Client | None = None
    listeners = []
    t = time.monotonic()
    try:
        lab = labmod.up(lab_name, hosts=2, make_current=False, openstack=True)
        out["lab_up_seconds"] = round(time.monotonic() - t, 2)
        if not labopenstack.driver_enabled(lab):
            raise SystemExit("the gingham mechanism driver is not installed in Neutron's venv")
        api = NeutronAPI(lab.openstack_url)
        net = api.create_network("bench")
        api.create_subnet(net["id"], SUBNET)
        client_sg = api.create_security_group("client")["id"]
        web_sg = api.create_security_group("web")["id"]
        api.create_security_group_rule(web_sg, "ingress", ethertype="IPv4", protocol="tcp",
                                       port_range_min=PORT, port_range_max=PORT,
                                       remote_group_id=client_sg)
        cport = api.create_port(net["id"], host="h1", security_groups=[client_sg])
        cvm = vms.add(lab_name, "client", cport["id"])
        client = Client(netns_path(cvm.netns))
        created, plugged, after_plug, total, failed = [], [], [], [], 0
        for i in range(n):
            t0 = time.monotonic()
            port = api.create_port(net["id"], host="h2", security_groups=[web_sg],
                                   name=f"web{i}")
            t1 = time.monotonic()
            wl = vms.add(lab_name, f"web{i}", port["id"])
            listeners.append(listen_in(netns_path(wl.netns), PORT))
            t2 = time.monotonic()
            client.probe(str(i), wl.ips[0], PORT, timeout)
            client.wait_all([str(i)], timeout + 5)
            ok, t3, _attempts = client.results.get(str(i), (False, 0.0, 0))
            if not ok:
                failed += 1
                continue
            created.append(t1 - t0)
            plugged.append(t2 - t1)
            after_plug.append(t3 - t2)
            total.append(t3 - t0)
            time.sleep(0.2)
        out.update({
            "ports": n,
            "failed": failed,
            "port_create_to_first_response": summary_ms(total),
            "neutron_create_port": summary_ms(created),
            "nova_plug": summary_ms(plugged),
            "first_response_after_plug": summary_ms(after_plug),
            "port_create_to_first_response_ms_all": [round(x * 1e3, 2) for x in total],
        })  # fmt: skip
    finally:
        if client is not None:
            client.close()
        for s in listeners:
            s.close()
        t = time.monotonic()
        labmod.down(lab_name)
        out["lab_down_seconds"] = round(time.monotonic() - t, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 ports")
    ap.add_argument("--ports", type=int, default=0, help="ports to create (default 20)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a response")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/openstack_port.py needs root (network namespaces)")
    n = args.ports or (5 if args.quick else 20)
    result: dict[str, Any] = {
        "bench": "openstack_port",
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "loadavg_before": list(os.getloadavg())},
    }  # fmt: skip
    try:
        result.update(run(n, f"osb{os.getpid() % 100000}", args.timeout))
    finally:
        shutil.rmtree(os.environ["GINGHAM_LAB_RUN_DIR"], ignore_errors=True)
    result["machine"]["loadavg_after"] = list(os.getloadavg())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
