"""Names that more than one part of gingham spells: defined here once, imported everywhere.

Standard library only and importing nothing at run time (``typing`` is for mypy
alone: it costs the CNI plugin's thin client milliseconds), so that every
package may use it:
the selector language (which imports no other part of gingham), the CNI
plugin's fast path, calc and the policy tools alike. Files on the host that
the agent keeps for other programs (its run directory, the MTU file) are
:mod:`gingham.hostfiles`; datastore key paths are :mod:`gingham.datastore.keys`
and :mod:`gingham.ipam.keys`; CNI error codes are :mod:`gingham.cni.protocol`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Final

# --- labels gingham puts on things itself ----------------------------------------
# calc adds them to every endpoint and namespaced set as it reads them; they are
# never stored, and no workload can set them (calc/labels.py).

# The namespace of a namespaced thing; ``global()`` is true exactly when it is absent.
NAMESPACE_LABEL: Final = "projectcalico.org/namespace"
ORCHESTRATOR_LABEL: Final = "projectcalico.org/orchestrator"
SERVICE_ACCOUNT_LABEL: Final = "projectcalico.org/serviceaccount"
# A namespace's (or a service account's) own name, as its profile's labels carry it.
NAME_LABEL: Final = "projectcalico.org/name"
# Labels a namespace's profile applies to its endpoints: the namespace's own, prefixed.
NAMESPACE_LABEL_PREFIX: Final = "pcns."
# What a serviceAccounts selector sees of an account: its labels under this prefix.
SERVICE_ACCOUNT_LABEL_PREFIX: Final = "pcsa."
SERVICE_ACCOUNT_NAME_LABEL: Final = SERVICE_ACCOUNT_LABEL_PREFIX + NAME_LABEL
# Kubernetes puts it on every Namespace; gingham adds it where it is missing.
K8S_NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"

# --- names of converted Kubernetes objects -------------------------------------------

# A Kubernetes NetworkPolicy ``<name>`` is enforced as Calico NetworkPolicy ``knp.default.<name>``.
KNP_PREFIX: Final = "knp.default."
# A v1 Namespace ``<ns>`` becomes Profile ``kns.<ns>``.
NAMESPACE_PROFILE_PREFIX: Final = "kns."

# --- the environment ----------------------------------------------------------------

# The datastore URL for every gingham program that is not told one.
DATASTORE_ENV: Final = "GINGHAM_DATASTORE"
DEFAULT_DATASTORE_URL: Final = "sqlite:///var/lib/gingham/gingham.db"
# The node name for the CNI plugin when its network configuration names none.
NODENAME_ENV: Final = "GINGHAM_NODENAME"
# The unix socket of a fan-out server for ``gingham node run`` to read the datastore through.
FANOUT_ENV: Final = "GINGHAM_FANOUT"
# The log format of every gingham program (text or json) when no --log-format says.
LOG_FORMAT_ENV: Final = "GINGHAM_LOG_FORMAT"
# The CLI's configuration file (kubectl-style contexts, ``gingham config``): this variable
# names it, else ``$XDG_CONFIG_HOME/<CONFIG_FILE>``, else ``~/.config/<CONFIG_FILE>``.
CONFIG_ENV: Final = "GINGHAM_CONFIG"
CONFIG_FILE: Final = "gingham/config.yaml"
# A context of that file to use instead of its current-context (as ``gingham --context``).
CONTEXT_ENV: Final = "GINGHAM_CONTEXT"

# --- ownership markers on the host (DESIGN.md section 2) -----------------------------
# A host may run Calico too: gingham shares none of these with it.

# The route protocol number of every route the agent or the CNI plugin installs.
RTPROT_GINGHAM: Final = 201
# The host side of every workload veth the CNI plugin makes starts with this.
WORKLOAD_INTERFACE_PREFIX: Final = "gh"
# The nftables table (family inet) that holds every policy rule.
NFT_TABLE: Final = "gingham"
# Every kernel log line gingham's rules write starts with this, then ``<rule id>: ``
# (``gingham flows`` shows only such lines).
PACKET_LOG_PREFIX: Final = "gingham "
