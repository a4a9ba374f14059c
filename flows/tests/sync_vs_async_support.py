"""Shared by every lane's tests of ``sync-vs-async``: the issue's lessons as one contract.

A subclass names its ``protocols`` (a tuple) and, through its own autouse fixtures, the
broker mode its lanes run on (embedded or real). The tests run the real workflow, read
``result.protocols`` and cross-check it against the recorded events.
"""

from __future__ import annotations

from typing import Any, ClassVar

from flows.summary import latency_stats

from .amqp_support import Finished, run_workflow

SLUG = "sync-vs-async"
SYNC = frozenset({"http", "grpc"})
# Small and quick: the work still dwarfs what a hand-over costs, so the lessons show.
QUICK = {"orders": 10, "work_ms": 100, "rate": 20.0}
RUN_TIMEOUT_S = 120.0


def run_compare(protocols: tuple[str, ...], **params: Any) -> Finished:
    return run_workflow(SLUG, timeout=RUN_TIMEOUT_S, **{**QUICK, "protocols": list(protocols), **params})


def lane_events(finished: Finished, protocol: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in finished.events if e["kind"] == kind and e["attrs"].get("protocol") == protocol]


def in_window(event: dict[str, Any], window: dict[str, float]) -> bool:
    return window["start_ms"] <= event["t_ms"] <= window["end_ms"]


class SyncVsAsyncContract:
    """The issue's tests, for the lanes in ``protocols``."""

    protocols: ClassVar[tuple[str, ...]] = ()

    @property
    def sync(self) -> list[str]:
        return [p for p in self.protocols if p in SYNC]

    @property
    def async_(self) -> list[str]:
        return [p for p in self.protocols if p not in SYNC]

    def check_common(self, finished: Finished) -> None:
        """What holds in every mode: every lane reported, every lane event says its lane."""
        result = finished.result
        assert sorted(result["protocols"]) == sorted(self.protocols)
        for event in finished.events:
            if event["actor"] != "runner":
                assert event["attrs"].get("protocol") in self.protocols, event
        for protocol in self.protocols:
            figures = result["protocols"][protocol]
            assert figures["pattern"] == ("sync" if protocol in SYNC else "async")
            assert figures["placed"] == result["orders"]
            assert figures["verdict"].split(":")[0].lower() == protocol
            # The tally is the record's: one first processing per completed order.
            firsts = [e for e in lane_events(finished, protocol, "process") if not e["duplicate"]]
            assert len(firsts) == figures["completed"]
            assert figures["duplicates"] == sum(e["duplicate"] for e in lane_events(finished, protocol, "deliver"))
            # Every wait the caller felt is on the event that ended it, and the figures are those waits'.
            waits = [e["attrs"]["perceived_ms"] for e in finished.events
                     if e["attrs"].get("protocol") == protocol and "perceived_ms" in e["attrs"]]
            assert len(waits) == figures["placed"]
            assert latency_stats(waits)["p50"] == figures["perceived"]["p50"]
            errors = lane_events(finished, protocol, "error")
            assert figures["errors"] == len(errors) == sum(figures["error_reasons"].values())
            assert {e["attrs"]["reason"] for e in errors} == set(figures["error_reasons"])
            if protocol not in SYNC:
                # The log reads in causal order: an order's publish before its first delivery.
                published = {e["message_id"]: e["seq"] for e in lane_events(finished, protocol, "publish")}
                for deliver in lane_events(finished, protocol, "deliver"):
                    assert published[deliver["message_id"]] < deliver["seq"], deliver

    def test_up_sync_callers_wait_the_work_async_callers_do_not(self) -> None:
        finished = run_compare(self.protocols, downstream="up")
        self.check_common(finished)
        result = finished.result
        assert result["outage"] is None
        for protocol in self.protocols:
            figures = result["protocols"][protocol]
            assert figures["completed"] == QUICK["orders"], figures
            assert figures["errors"] == figures["lost"] == figures["duplicates"] == 0, figures
            if protocol in SYNC:
                assert figures["perceived"]["p50"] >= QUICK["work_ms"], figures
            else:
                assert figures["perceived"]["p50"] < 50, figures
                assert figures["end_to_end"]["p50"] >= QUICK["work_ms"], figures
        # Progress: every order's first processing, in every lane.
        progress = finished.summary["progress"]
        assert progress["done"] == progress["expected"] == QUICK["orders"] * len(self.protocols)

    def test_down_sync_calls_fail_async_orders_wait_and_all_complete(self) -> None:
        finished = run_compare(self.protocols, downstream="down", outage_ms=800)
        self.check_common(finished)
        result = finished.result
        window = result["outage"]
        assert window and window["end_ms"] - window["start_ms"] >= 800
        states = [e["attrs"]["state"] for e in finished.of("outage", "runner")]
        assert states == ["down", "up"]
        for protocol in self.sync:
            figures = result["protocols"][protocol]
            errors = lane_events(finished, protocol, "error")
            assert figures["errors"] == len(errors) > 0, figures
            during = [e for e in errors if in_window(e, window)]
            assert during, f"{protocol}: no error during the outage {window}: {errors}"
            for error in during:
                assert any(word in error["attrs"]["reason"] for word in ("refused", "unavailable", "dropped",
                                                                         "deadline")), error
            assert "failed during the outage" in figures["verdict"]
        for protocol in self.async_:
            figures = result["protocols"][protocol]
            assert figures["errors"] == figures["lost"] == 0, figures
            assert figures["backlog_max"] > 0, figures
            assert figures["completed"] == QUICK["orders"], figures
            backlog = lane_events(finished, protocol, "backlog")
            assert max(e["attrs"]["depth"] for e in backlog) == figures["backlog_max"]
            assert backlog[-1]["attrs"]["depth"] == 0, "the backlog drained"
            assert figures["drained_ms"] is not None and f"drained {figures['drained_ms'] / 1000:.1f} s after" \
                in figures["verdict"]

    def test_flaky_async_lanes_show_duplicates_with_reasons_sync_lanes_retry(self) -> None:
        finished = run_compare(self.protocols, downstream="flaky", flaky_rate=0.3)
        self.check_common(finished)
        result = finished.result
        for protocol in self.protocols:
            figures = result["protocols"][protocol]
            crashes = lane_events(finished, protocol, "crash")
            assert crashes, f"{protocol}: no handling crashed"
            assert figures["completed"] == QUICK["orders"], figures
            if protocol in SYNC:
                assert figures["retries"] == len(crashes) == figures["errors"], figures
                retried = {e["message_id"] for e in lane_events(finished, protocol, "retry")}
                assert retried == {e["message_id"] for e in crashes}
            else:
                assert figures["lost"] == 0 and figures["duplicates"] >= 1, figures
            duplicates = [e for e in lane_events(finished, protocol, "deliver") if e["duplicate"]]
            assert duplicates and all(e["attrs"].get("reason") for e in duplicates), duplicates

