"""The lanes of sync-vs-async, one module per protocol (``flows.compare.lane.LANES``)."""
