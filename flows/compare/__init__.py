"""``sync-vs-async``: the same orders over six protocols at once, lane by lane (``lane.py``)."""
