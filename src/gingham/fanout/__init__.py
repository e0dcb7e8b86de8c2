"""Fan-out of one datastore watch to many agents, in the manner of Calico's Typha.

Every agent that follows the datastore itself costs the datastore a watch.
The fan-out server follows the datastore once, keeps the current state of
every key, and serves each connected agent a snapshot followed by the
deltas, over a unix socket or TCP with mutual TLS (``address.py``):

    datastore --watch--> FanoutServer --snapshot + deltas--> FanoutClient (x N)

:class:`FanoutClient` has the same ``poll(timeout)`` / ``status`` shape as
:class:`gingham.datastore.syncer.Syncer`, so an agent can use either. The wire
format (length-prefixed JSON frames, with their limits) lives in
:mod:`gingham.fanout.protocol`.
"""

from gingham.fanout.client import FanoutClient
from gingham.fanout.protocol import Frame, FrameDecoder, encode_frame, encode_frames
from gingham.fanout.server import FanoutServer

__all__ = ["FanoutClient", "FanoutServer", "Frame", "FrameDecoder", "encode_frame", "encode_frames"]
