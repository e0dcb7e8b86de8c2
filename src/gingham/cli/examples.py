"""The Examples section of every command's help, keyed by command path.

``gingham get -h`` ends with these, and ``docs/CLI.md`` (``docgen.py``) shows
them; ``tests/unit/cli/test_examples.py`` fails on a command without
examples and on an example naming a command or flag that does not exist, so
the examples cannot go stale. Each example is (what it does, one command
line). Data only: ``main.LazyGroup`` attaches them as the click epilog.
"""

from __future__ import annotations

from typing import Final

Example = tuple[str, str]

EXAMPLES: Final[dict[str, tuple[Example, ...]]] = {
    "": (
        ("A 3-host lab on this machine, then what it runs",
         "gingham lab up --hosts 3 && gingham lab status"),
        ("Apply Calico or Kubernetes manifests", "gingham apply -f examples/tiered-policy.yaml"),
        ("Use a datastore for one command", "gingham --datastore etcd://10.0.0.5:2379 get gnp"),
    ),
    # --- resources --------------------------------------------------------------------
    "apply": (
        ("Every manifest under a directory, checked but not written",
         "gingham apply -f manifests/ -R --dry-run"),
        ("Create or overwrite every resource of a file", "gingham apply -f examples/tiered-policy.yaml"),
        ("Several files at once; nothing is written if any document is invalid",
         "gingham apply -f examples/ippool-vxlan.yaml -f examples/bgp-tor.yaml"),
        ("From standard input, namespaced resources into 'shop'",
         "cat policy.yaml | gingham apply -f - -n shop"),
    ),
    "create": (
        ("Create resources; fails, writing nothing, if any of them exists",
         "gingham create -f examples/ippool-vxlan.yaml"),
    ),
    "replace": (
        ("Edit a stored resource and write it back (refused if someone changed it since)",
         "gingham get gnp default-deny -o yaml > gnp.yaml && gingham replace -f gnp.yaml"),
    ),
    "delete": (
        ("By label selector (kubectl or Calico syntax), checked first",
         "gingham delete np -A -l 'app in (web,api)' --dry-run"),
        ("Delete by kind and name", "gingham delete gnp default-deny"),
        ("A namespaced policy", "gingham delete networkpolicy api-ingress -n shop"),
        ("Everything a file names; a missing one is fine",
         "gingham delete -f examples/tiered-policy.yaml --ignore-not-found"),
        ("Delete what get lists", "gingham get knp -n shop -o name | xargs gingham delete -n shop"),
    ),
    "get": (
        ("By label, every namespace", "gingham get np -A -l app=web -o wide"),
        ("What -o name prints is a name get and delete accept",
         "gingham get networkpolicies/shop/web -o yaml"),
        ("Global policies as a table", "gingham get gnp"),
        ("One resource as YAML, ready to edit and replace", "gingham get ippool default-ipv4-ippool -o yaml"),
        ("Kubernetes NetworkPolicies of every namespace", "gingham get knp -A"),
        ("Calico NetworkPolicies of one namespace, with selectors and labels",
         "gingham get networkpolicies -n shop -o wide"),
        ("Names only, for scripts", "gingham get weps -A -o name"),
        ("JSON for jq", "gingham get nodes -o json | jq -r '.items[].metadata.name'"),
    ),
    "validate": (
        ("Check manifests offline (no datastore); exit 1 names document and field",
         "gingham validate -f examples/host-protection.yaml"),
        ("Every file of a directory", "gingham validate $(printf -- '-f %s ' examples/*.yaml)"),
    ),
    "selector": (
        ("Check a selector's syntax and print its canonical form",
         "gingham selector \"app == 'web' && has(tier)\""),
        ("Does it match these labels? (exit 0 yes, 1 no)",
         "gingham selector \"tier in {'db', 'cache'}\" --labels tier=db,app=pg"),
        ("Also its stable id", "gingham selector 'all()' --show-id"),
    ),
    "version": (
        ("The version", "gingham version"),
        ("For scripts", "gingham version -o json | jq -r .version"),
    ),
    # --- datastore --------------------------------------------------------------------
    "datastore": (
        ("Make a sqlite datastore", "gingham datastore init --datastore sqlite:///var/lib/gingham/gingham.db"),
        ("Which datastore is in use", "gingham datastore info"),
    ),
    "datastore init": (
        ("Create a sqlite datastore (0600) and its cluster ID; safe to repeat",
         "gingham datastore init --datastore sqlite:///var/lib/gingham/gingham.db"),
        ("On etcd: just the cluster ID", "gingham --datastore etcd://10.0.0.5:2379 datastore init"),
    ),
    "datastore info": (
        ("URL (no password), cluster ID and revision", "gingham datastore info"),
        ("As JSON", "gingham datastore info -o json"),
    ),
    # --- IPAM -------------------------------------------------------------------------
    "ipam": (
        ("Usage per pool and per block", "gingham ipam show --show-blocks"),
        ("Find leaked addresses (run twice, a grace period apart)", "gingham ipam check"),
    ),
    "ipam show": (
        ("Usage per pool", "gingham ipam show"),
        ("Also every block: host, used, free", "gingham ipam show --show-blocks"),
        ("Who holds an address", "gingham ipam show --ip 198.18.15.193"),
    ),
    "ipam check": (
        ("Leaks seen by this check and the previous one", "gingham ipam check"),
        ("Report at once (no grace period) and save the report",
         "gingham ipam check --grace 0 --report leaks.json"),
        ("Release what it finds, each item checked again first", "gingham ipam check --release"),
    ),
    "ipam release": (
        ("One address", "gingham ipam release --ip 198.18.15.193"),
        ("Every address of a handle", "gingham ipam release --handle gingham-net.4f2a9c"),
        ("What a check reported", "gingham ipam release --from-report leaks.json"),
    ),
    "ipam assign": (
        ("Hold an address for something outside gingham",
         "gingham ipam assign --ip 198.18.0.10 --handle vip-web --host h1"),
    ),
    "ipam configure": (
        ("Never borrow addresses from other hosts' blocks", "gingham ipam configure --strict-affinity"),
        ("At most 4 blocks for host h2", "gingham ipam configure --host h2 --max-blocks-per-host 4"),
    ),
    # --- hosts ------------------------------------------------------------------------
    "node": (
        ("Run the agent for this host", "gingham node run --name $(hostname)"),
        ("Its status and BGP sessions", "gingham node status"),
    ),
    "node run": (
        ("The agent of host edge-7 (as root; GINGHAM_DATASTORE names the datastore)",
         "gingham node run --name edge-7"),
        ("Reading through a fan-out server", "gingham node run --name edge-7 --fanout /run/gingham/fanout.sock"),
        ("Health server on all addresses, debug log",
         "gingham node run --name edge-7 --health-host 0.0.0.0 --log-level debug"),
    ),
    "node status": (
        ("This host's agent and BGP sessions", "gingham node status"),
        ("The agent of lab host h1 only, as JSON", "gingham node status --name h1 --agent -o json"),
    ),
    "cni": (
        ("Install the plugins and a network configuration", "gingham cni install"),
    ),
    "cni install": (
        ("Plugins into /opt/cni/bin, network 'gingham' into /etc/cni/net.d", "gingham cni install"),
        ("Another network name and directories",
         "gingham cni install --name web --bin-dir /usr/lib/cni --conf-dir /etc/cni/net.d"),
    ),
    "cni config": (
        ("Print the network configuration list for this host", "gingham cni config --name gingham"),
        ("Without the agent: the plugin always does the work itself",
         "gingham cni config --name gingham --no-agent"),
    ),
    "docker": (
        ("The Docker network and IPAM driver for this host", "gingham docker serve --node $(hostname)"),
    ),
    "docker serve": (
        ("Serve Docker beside this host's agent (then: docker network create -d gingham ...)",
         "gingham docker serve --node $(hostname)"),
        ("Another daemon socket, debug log",
         "gingham docker serve --node h1 --docker-host unix:///run/docker-h1.sock --log-level debug"),
    ),
    "fanout": (
        ("Serve the agents of this machine", "gingham fanout serve --socket /run/gingham/fanout.sock"),
    ),
    "fanout serve": (
        ("On a unix socket (agents: node run --fanout /run/gingham/fanout.sock)",
         "gingham fanout serve --socket /run/gingham/fanout.sock"),
        ("Over TCP with mutual TLS",
         "gingham fanout serve --listen 0.0.0.0:5473 --tls-ca ca.pem --tls-cert fanout.pem --tls-key fanout.key"),
    ),
    # --- policy -----------------------------------------------------------------------
    "policy": (
        ("Why can't shop/frontend reach shop/api?", "gingham policy explain shop/frontend shop/api --port 8080"),
        ("Packets per rule", "gingham policy stats"),
    ),
    "policy explain": (
        ("The verdict and the rule that decides it (exit 0 allowed, 1 denied)",
         "gingham policy explain shop/frontend shop/api --port 8080"),
        ("Every tier, policy and rule on the way", "gingham policy explain shop/batch shop/api --port 8080 --trace"),
        ("ICMP echo to an address outside gingham",
         "gingham policy explain shop/api 192.0.2.1 --protocol icmp --icmp-type 8"),
    ),
    "policy matrix": (
        ("Who may reach whom on tcp/80, from the model (no packets)", "gingham policy matrix"),
        ("Namespace shop, port 8080", "gingham policy matrix -n shop --port 8080"),
    ),
    "policy stats": (
        ("Packets matched per rule, per host of the current lab", "gingham policy stats"),
        ("Also rules that matched nothing, as JSON", "gingham policy stats --all -o json"),
    ),
    "flows": (
        ("Denied packets of one namespace", "gingham flows -n shop --denied"),
        ("The last denied packets, with workload names", "gingham flows --denied"),
        ("Packets to or from one workload in the last 5 minutes", "gingham flows --workload shop/api --since 300"),
        ("Watch drops for 30 seconds", "gingham flows --follow --duration 30"),
    ),
    # --- the lab ----------------------------------------------------------------------
    "lab": (
        ("Three hosts in network namespaces, with agents and a datastore", "gingham lab up --hosts 3"),
        ("Who reaches whom", "gingham lab matrix"),
        ("Remove it all", "gingham lab down"),
    ),
    "lab up": (
        ("Three hosts and a sqlite datastore; the lab becomes the current one", "gingham lab up --hosts 3"),
        ("etcd (3 members) and hosts on two subnets (VXLAN between them)",
         "gingham lab up --name wide --backend etcd --subnets 2"),
        ("With a Docker daemon on every host", "gingham lab up --docker"),
    ),
    "lab down": (
        ("Remove the current lab", "gingham lab down"),
        ("Every lab on this machine", "gingham lab down --all"),
    ),
    "lab status": (
        ("Hosts, agents, restarts and workloads", "gingham lab status"),
        ("As JSON", "gingham lab status --name wide -o json"),
    ),
    "lab env": (
        ("Point plain gingham commands at the lab's datastore", "eval \"$(gingham lab env)\""),
    ),
    "lab exec": (
        ("Routes inside a workload", "gingham lab exec shop/api -- ip route"),
        ("The nftables ruleset of host h1", "gingham lab exec h1 -- nft list table inet gingham"),
    ),
    "lab docker": (
        ("Containers on h1's daemon (lab up --docker)", "gingham lab docker h1 -- ps"),
        ("Run one on the gingham network",
         "gingham lab docker h1 -- run --rm --network web busybox:gingham ip addr"),
    ),
    "lab vm": (
        ("Plug a VM into a Neutron port (lab up --openstack)", "gingham lab vm add web --port PORT_ID"),
    ),
    "lab vm add": (
        ("A VM on a bound Neutron port, answering on tcp/80",
         "gingham lab vm add web --port PORT_ID --serve 80/tcp"),
    ),
    "lab vm del": (
        ("Unplug it (the port stays)", "gingham lab vm del web"),
    ),
    "lab probe": (
        ("Does shop/frontend reach shop/api on tcp/8080? (exit 0 yes, 1 no)",
         "gingham lab probe shop/frontend shop/api --port 8080"),
        ("UDP, shorter timeout", "gingham lab probe shop/api shop/batch --port 53 --protocol udp --timeout 0.2"),
    ),
    "lab matrix": (
        ("Every workload to every other on tcp/80", "gingham lab matrix"),
        ("Another port, and mark where the model disagrees", "gingham lab matrix --port 8080 --explain"),
        ("As JSON", "gingham lab matrix -o json"),
    ),
    "lab demo": (
        ("A 3-host lab, workloads in two namespaces, policy before and after", "gingham lab demo"),
    ),
    "workload": (
        ("A workload in namespace shop on host h1", "gingham workload add shop/api --host h1 --labels app=api --serve 8080/tcp"),
        ("Relabel it; policy follows", "gingham workload label shop/api tier=backend"),
    ),
    "workload add": (
        ("Namespace shop, name api, on h2, labelled, accepting tcp/8080",
         "gingham workload add shop/api --host h2 --labels app=api,tier=backend --serve 8080/tcp"),
        ("A named port and a UDP echo", "gingham workload add shop/dns --host h3 --serve 53/udp:dns,80/tcp:http"),
    ),
    "workload del": (
        ("Delete it; its address is freed", "gingham workload del shop/api"),
    ),
    "workload label": (
        ("Set a label and remove another", "gingham workload label shop/api tier=db app-"),
    ),
    "workload list": (
        ("Workloads the datastore knows", "gingham workload list"),
        ("As JSON", "gingham workload list -o json"),
    ),
    # --- shell completion -------------------------------------------------------------
    "completion": (
        ("Bash, for this shell", "source <(gingham completion bash)"),
        ("Bash, for every shell of this machine",
         "gingham completion bash > /etc/bash_completion.d/gingham"),
        ("zsh", "gingham completion zsh > \"${fpath[1]}/_gingham\""),
        ("fish", "gingham completion fish > ~/.config/fish/completions/gingham.fish"),
    ),
    # --- commands other parts of issue 17 add (see PENDING in the test) ---------------
    "patch": (
        ("Change one field (a JSON merge patch)", "gingham patch gnp default-deny -p '{\"spec\":{\"order\":50}}'"),
        ("A namespaced policy, as a JSON patch",
         "gingham patch networkpolicy api-ingress -n shop --type json -p '[{\"op\":\"replace\",\"path\":\"/spec/order\",\"value\":10}]'"),
    ),
    "label": (
        ("Add a label", "gingham label namespace monitoring team=monitoring"),
        ("Change an existing label", "gingham label gnp default-deny env=prod --overwrite"),
        ("Remove a label", "gingham label gnp default-deny env-"),
    ),
    "diff": (
        ("What apply would change (exit 0 none, 1 differences)", "gingham diff -f examples/tiered-policy.yaml"),
    ),
    "config": (
        ("Which datastore commands use, and where that came from", "gingham config view"),
        ("Pin one", "gingham config use-context prod"),
    ),
    "config view": (
        ("The datastore in use and its source (flag, environment, context, lab)", "gingham config view"),
        ("As JSON", "gingham config view -o json"),
    ),
    "config set-context": (
        ("A context for a production etcd", "gingham config set-context prod --datastore etcd://10.0.0.5:2379"),
    ),
    "config use-context": (
        ("Commands use it from now on", "gingham config use-context prod"),
    ),
    "config get-contexts": (
        ("Every context", "gingham config get-contexts"),
    ),
    "config current-context": (
        ("The one in use", "gingham config current-context"),
    ),
    "config delete-context": (
        ("Forget one", "gingham config delete-context prod"),
    ),
    "config unset": (
        ("No current context: back to GINGHAM_DATASTORE, the lab's or the default",
         "gingham config unset current-context"),
    ),
    "node install": (
        ("This host's systemd units, environment file and CNI plugin",
         "gingham node install --datastore etcd://10.0.0.5:2379"),
        ("What it would write into an image being built",
         "gingham node install --prefix /tmp/img --datastore etcd://10.0.0.5:2379 --dry-run"),
    ),
    "node uninstall": (
        ("Remove what node install wrote", "gingham node uninstall"),
    ),
}


# Another name of the same command object: it shows the examples of the first name.
ALIASES: Final[dict[str, str]] = {"datastore status": "datastore info"}


def examples_for(path: str) -> tuple[Example, ...]:
    return EXAMPLES.get(ALIASES.get(path, path), ())


def epilog(path: str) -> str | None:
    """The help's Examples section for ``path`` ("get", "lab up"); None if it has none.

    The ``\\b`` line keeps click from rewrapping the paragraph.
    """
    examples = examples_for(path)
    if not examples:
        return None
    lines = ["\b", "Examples:"]
    for what, command in examples:
        lines += [f"  # {what}", f"  {command}"]
    return "\n".join(lines)
