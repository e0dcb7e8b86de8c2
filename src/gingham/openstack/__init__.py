"""OpenStack Neutron: the ``gingham`` ML2 mechanism driver (runs inside neutron-server).

Contract (docs/OPENSTACK.md tells operators the same):

- Install ``gingham[openstack]`` into Neutron's interpreter (the extra names
  no package: neutron and neutron_lib come from the distribution). The class
  is ``gingham.openstack.mech_driver:GinghamMechanismDriver``, entry point
  ``gingham`` in group ``neutron.ml2.mechanism_drivers``; enable it with
  ``[ml2] mechanism_drivers = gingham``.
- Configuration, group ``[gingham]``: ``datastore`` (a gingham datastore URL;
  default the ``GINGHAM_DATASTORE`` environment variable, else
  ``sqlite:///var/lib/gingham/gingham.db``), ``resync_interval`` (seconds,
  default 60; 0 resyncs only at start).
- ``bind_port`` binds ports of VMs (``device_owner`` empty or ``compute:*``,
  vnic ``normal``, port security on) on hosts whose gingham agent has written
  its Node (name = ``binding:host_id``), on a ``local`` or ``flat`` segment,
  with ``vif_type`` ``tap`` and ``vif_details`` ``{"port_filter": true}``;
  anything else is not bound (Neutron reports the binding failure). Once the
  endpoint is written the port goes ACTIVE (a provisioning block of the L2
  entity, completed by the driver: no L2 agent will).
- A bound port is a WorkloadEndpoint in namespace ``<project id>`` (lower
  case; ports of a project whose ID is no DNS label are not bound), named
  ``<host>-openstack-<device_id or port id>-<port id>``, orchestrator
  ``openstack``, interface ``tap<port id[:11]>``, labels
  ``sg.gingham.dev/<group id>: ""`` per security group,
  ``openstack.gingham.dev/network`` and ``openstack.gingham.dev/project``,
  annotation ``openstack.gingham.dev/port-id`` (``ports``).
- A security group is Profile ``openstack-sg-<group id>`` (``secgroups``); a
  subnet is IPPool ``openstack-subnet-<subnet id>`` in Manual assignment mode,
  and each bound port's addresses are held in gingham IPAM under handle
  ``openstack.<port id>`` for its host, so gingham never hands them out and
  every agent routes them (``subnets``). FelixConfiguration ``default`` gets
  ``tap`` among its ``interfacePrefix`` prefixes.
- A periodic resync (``resync``) repairs the datastore from Neutron's database
  and deletes only what carries the driver's annotations.

Only ``mech_driver`` and ``callbacks`` import Neutron; ``names``, ``ports``,
``secgroups``, ``subnets``, ``store`` and ``resync`` are plain gingham and are
tested without it. Nothing else in gingham imports this package.
"""
