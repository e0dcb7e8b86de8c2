"""Policy, explained: a reference evaluator over model resources (``explain``),
per-rule packet counters from the dataplane (``stats``) and the denied-packet
log with workload names (``flows``)."""
