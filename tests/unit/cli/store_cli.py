"""Running ``gingham`` in-process (click's CliRunner) on a fresh sqlite datastore."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from click.testing import CliRunner, Result

from gingham.cli.main import cli
from gingham.datastore import open_datastore

POLICIES = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: allow-dns, labels: {team: net}}
spec:
  order: 100
  selector: all()
  egress: [{action: Allow, protocol: UDP, destination: {ports: [53]}}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-log, labels: {team: sec, tier: edge}}
spec: {order: 900, selector: all(), types: [Ingress]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {selector: app == 'web', ingress: [{action: Allow}]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: db, namespace: shop, labels: {app: db, tier: data}}
spec: {selector: app == 'db'}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web, namespace: blog, labels: {app: web}}
spec: {selector: app == 'web'}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: shop, labels: {app: web}}
spec: {podSelector: {}, policyTypes: [Ingress]}
"""


@dataclass
class StoreCli:
    url: str

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, ["--datastore", self.url, *args], input=input)

    def revision(self) -> int:
        with open_datastore(self.url) as ds:
            return ds.revision()

    def keys(self) -> list[str]:
        from gingham.datastore import keys

        with open_datastore(self.url) as ds:
            items, _ = ds.list(keys.RESOURCES)
        return [kv.key for kv in items]


def store_cli(url: str, manifests: str | None = POLICIES) -> StoreCli:
    """A CLI on a new datastore at ``url``, with ``manifests`` applied."""
    open_datastore(url, create=True).close()
    run = StoreCli(url)
    if manifests:
        result = run("apply", "-f", "-", input=manifests)
        assert result.exit_code == 0, result.output
    return run


Run = Callable[..., Result]
