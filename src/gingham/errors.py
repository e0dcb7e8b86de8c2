"""The one error hierarchy of gingham.

Every error the project raises on purpose derives from :class:`GinghamError`.
Third-party errors (httpx, sqlite3, pyroute2, subprocess, pydantic) are
translated into these at the boundary of the module that calls them, so the
CLI and the agent only ever have to handle this tree.

    GinghamError
    ├── ValidationError        bad input: names the document, field path or position
    │   ├── SelectorError      a selector that does not parse (carries .position)
    │   └── ProtocolError      a peer broke the fan-out wire protocol; drop the connection
    ├── DatastoreError
    │   ├── NotFound
    │   ├── AlreadyExists
    │   ├── RevisionConflict   compare-and-swap lost; re-read and retry
    │   ├── Unavailable        the datastore cannot be reached (transient)
    │   ├── ResyncRequired     a watch fell behind compaction; list again
    │   └── NoDatastore        nothing at the URL is a gingham datastore (never made, or a
    │                          mistyped path, or a file that is something else): not created
    ├── IPAMError
    │   ├── PoolExhausted
    │   └── AddressInUse
    ├── DataplaneError         nft / netlink / sysctl failed
    ├── RoutingError           BIRD configuration or control failed
    ├── CNIError               carries the CNI error .code
    ├── DockerError            a libnetwork driver call that cannot be served (Docker shows it)
    ├── OpenStackError         a Neutron port, group, rule or subnet the ML2 driver refuses
    └── LabError
"""

from __future__ import annotations


class GinghamError(Exception):
    """Base of every error gingham raises on purpose."""


class ValidationError(GinghamError):
    """Input that cannot be accepted. ``location`` names where, e.g. ``doc 2: spec.ingress[0].action``."""

    def __init__(self, message: str, location: str = "") -> None:
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class SelectorError(ValidationError):
    """A selector expression that does not parse; ``position`` is the 0-based column."""

    def __init__(self, message: str, expression: str, position: int) -> None:
        self.expression = expression
        self.position = position
        super().__init__(f"{message} at position {position}")


class ProtocolError(ValidationError):
    """A fan-out peer sent bytes that are not a valid frame (length, JSON, shape, nesting, type).

    The stream has no trustworthy frame boundary after one: the reader drops
    the connection; a client then reconnects and starts from a snapshot.
    """


class DatastoreError(GinghamError):
    pass


class NotFound(DatastoreError):
    pass


class AlreadyExists(DatastoreError):
    pass


class RevisionConflict(DatastoreError):
    pass


class Unavailable(DatastoreError):
    pass


class ResyncRequired(DatastoreError):
    """The requested revision was compacted: the caller must list again and rewatch."""


class NoDatastore(DatastoreError):
    """There is no gingham datastore at the URL, and the caller did not ask to make one.

    Reads, agents and the CNI plugin open with ``create=False``: a mistyped
    path must fail loudly rather than yield a new, empty datastore (which an
    agent would read as "delete everything"). Also raised for a file that
    exists but is not a gingham datastore, with or without ``create``.
    """


class IPAMError(GinghamError):
    pass


class PoolExhausted(IPAMError):
    pass


class AddressInUse(IPAMError):
    pass


class DataplaneError(GinghamError):
    pass


class RoutingError(GinghamError):
    pass


class CNIError(GinghamError):
    """An error reported to a CNI runtime; ``code`` is the spec's error code."""

    def __init__(self, code: int, message: str, details: str = "") -> None:
        self.code = code
        self.details = details
        super().__init__(message)


class DockerError(GinghamError):
    """A libnetwork driver request the ``gingham`` Docker driver refuses or cannot serve."""


class OpenStackError(GinghamError):
    """A Neutron object the ``gingham`` ML2 mechanism driver cannot express (Neutron shows it)."""


class LabError(GinghamError):
    pass
