"""Docker's libnetwork remote network and IPAM driver ``gingham``.

``gingham docker serve`` is one process per host that Docker finds as a
plugin socket: ``ipam`` hands out addresses through gingham IPAM (block
affinity to the node, the same allocator as CNI), ``network`` writes the
WorkloadEndpoint and creates the veth, and the node agent then programs
policy and routes as for any workload. Everything it must remember lives in
the datastore (Docker replays nothing after a plugin restart); what Docker
forgot to tell it while it was down, ``reconcile`` learns from the daemon.
"""
