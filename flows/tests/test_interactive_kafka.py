"""Interactive Kafka runs driven by hand through the API, on a real Kafka-protocol broker.

One contract class, run against an external broker (the session's Tansu at its URL) and
against the Tansu the app starts itself (embedded mode). Each class drives two runs, as a
user would, and captures what it saw; the tests then check it against an independent
murmur2 (``kafka_support.java_partition``, itself checked against Kafka's test vectors)
and against the broker's own answers (end offsets from a fresh fetch, committed offsets
from OffsetFetch):

* ``kafka-partitions``: keys published by hand land where murmur2 says, at the offsets the
  reader fetched back; bad params are refused naming the field; a non-interactive run
  refuses hands-on actions.
* ``kafka-consumer-groups``: remove and add a member (each a recorded rebalance whose
  assignment covers every partition once), slow a member and watch the broker's lag of
  its partition grow while publishing, crash and restart a member under its name.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import pytest

from .interactive_support import HandsOn, interactive_run
from .kafka_support import broker_committed, java_partition, kafka_mode, wait_until

PARTITIONS_SLUG = "kafka-partitions"
GROUPS_SLUG = "kafka-consumer-groups"
# A 200-byte key is the longest allowed; "|" and "%" are the run's header separators, escaped.
HAND_KEYS = ("order-1", "ünïcödé-κλειδί", "a|b%7C", "k" * 200, "21", "foobar", "order-1")
P_PARTITIONS = 5
# Eight members for eight partitions: one each, so a member leaving or joining moves partitions.
G_PARTITIONS = 8
G_MEMBERS = 8
SLOW_MS = 5000
WAIT_S = 60.0


def keys_for(partition: int, partitions: int, count: int, prefix: str) -> list[str]:
    """``count`` keys the (independent) murmur2 puts in ``partition``."""
    picked = (f"{prefix}-{n}" for n in itertools.count())
    return list(itertools.islice((k for k in picked if java_partition(k.encode(), partitions) == partition), count))


def refused(response: Any) -> dict[str, Any]:
    return {"status": response.status_code, "errors": response.json().get("errors", {})}


def of(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["kind"] == kind]


def processed_ids(events: list[dict]) -> set[str]:
    return {e["message_id"] for e in of(events, "process")}


def rebalance_after(run: HandsOn, seq: int, cause: str) -> dict:
    events = run.events(lambda evs: any(e["seq"] > seq and cause in e["attrs"]["cause"] for e in of(evs, "rebalance")),
                        WAIT_S, f"a rebalance caused by {cause!r}")
    return next(e for e in of(events, "rebalance") if e["seq"] > seq and cause in e["attrs"]["cause"])


def ownership_at(events: list[dict], seq: int) -> dict[str, set[int]]:
    """Who owns what just after event ``seq``, replayed from the members' assign and revoke events."""
    owned: dict[str, set[int]] = defaultdict(set)
    for event in events:
        if event["seq"] > seq:
            break
        if event["kind"] == "assign":
            owned[event["attrs"]["member"]].update(event["attrs"]["partitions"])
        elif event["kind"] == "revoke":
            owned[event["attrs"]["member"]].difference_update(event["attrs"]["partitions"])
    return {member: parts for member, parts in owned.items() if parts}


def broker_lag(bootstrap: str, topic: str, group_id: str, partition: int, end: int) -> int:
    """End offset − the group's committed offset, once a fresh fetch shows the end at ``end``."""
    from flows.kafka.offsets import fetch_end_offsets

    wait_until(lambda: fetch_end_offsets(bootstrap, topic, G_PARTITIONS)[partition] == end, WAIT_S,
               f"partition {partition}'s end offset to reach {end}")
    return end - broker_committed(bootstrap, group_id, topic).get(partition, 0)


def drive_partitions(bootstrap: str) -> dict[str, Any]:
    from flows.runner import get_runner

    seen: dict[str, Any] = {}
    # A scripted run still producing: a hands-on action is refused, naming the action.
    with interactive_run(PARTITIONS_SLUG, interactive=False, messages=40, rate=4) as scripted:
        wait_until(lambda: get_runner().is_live(scripted.run_id), WAIT_S, "the scripted run to be live")
        seen["scripted_publish"] = refused(scripted.act("publish", key="order-1"))
        scripted.act("cancel")
    with interactive_run(PARTITIONS_SLUG, messages=0, partitions=P_PARTITIONS, acks="all") as run:
        seen["refusals"] = {
            "too_long": refused(run.act("publish", key="é" * 101)),  # 101 characters, 202 bytes
            "no_key": refused(run.act("publish")),
            "bad_param": refused(run.act("publish", key="a", partition=2)),
            "slow_too_much": refused(run.act("slow", delay_ms=SLOW_MS + 1)),
        }
        seen["replies"] = [(key, run.do("publish", key=key, value=f"hello {n}")) for n, key in enumerate(HAND_KEYS)]
        seen["slow"] = run.do("slow", delay_ms=20)
        mids = {reply["message_id"] for _key, reply in seen["replies"]}
        run.events(lambda evs: processed_ids(evs) >= mids, WAIT_S, "the reader to read every hand-published record")
        seen["menu"] = run.menu()
        seen["summary"] = run.finish()
        seen["events"] = run.events(lambda evs: bool(of(evs, "done")), WAIT_S, "the run's done event")
    return seen


def drive_groups(bootstrap: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    with interactive_run(GROUPS_SLUG, messages=0, groups=1, members=G_MEMBERS, partitions=G_PARTITIONS,
                         commit_mode="after", commit_every=1, process_ms=0, strategy="range") as run:
        events = run.events(lambda evs: bool(of(evs, "rebalance")), WAIT_S, "the group's first assignment")
        first = of(events, "rebalance")[0]
        group_id = first["attrs"]["group_id"]
        topic = of(events, "assign")[0]["attrs"]["topic"]
        seen.update(group_id=group_id, topic=topic)
        seen["refusals"] = {
            "over_bound": refused(run.act("add_member", group="billing")),  # 8 live already
            "not_in_run": refused(run.act("add_member", group="shipping")),
            "unknown": refused(run.act("remove_member", group="nope")),
            "too_long": refused(run.act("publish", key="x" * 201)),
            "nothing_to_restart": refused(run.act("restart")),
            "slow_nobody": refused(run.act("slow", target="billing/member-9", delay_ms=100)),
        }
        seen["menu"] = run.menu()

        seen["remove"] = run.do("remove_member", group="billing")
        seen["left"] = rebalance_after(run, first["seq"], "left (removed by hand)")
        seen["add"] = run.do("add_member", group="billing")
        seen["joined"] = rebalance_after(run, seen["left"]["seq"], "joined (added by hand)")

        # Publish by hand: each key to where murmur2 says; every member handles its own.
        by_hand = [keys_for(p, G_PARTITIONS, 1, "spread")[0] for p in range(G_PARTITIONS)]
        seen["spread"] = [(key, run.do("publish", key=key)) for key in by_hand]
        mids = {reply["message_id"] for _key, reply in seen["spread"]}
        run.events(lambda evs: processed_ids(evs) >= mids, WAIT_S, "the group to handle the hand-published records")

        # Slow partition 0's owner; publish to partition 0: the broker's lag there grows.
        owners = seen["joined"]["attrs"]["owners"]
        slowed = next(m for m, parts in owners.items() if 0 in parts)
        seen["slowed"] = slowed
        seen["slow"] = run.do("slow", target=f"billing/{slowed}", delay_ms=SLOW_MS)
        end = 1  # one record went to partition 0 above
        lags = [broker_lag(bootstrap, topic, group_id, 0, end)]
        hot = keys_for(0, G_PARTITIONS, 6, "hot")
        for batch in (hot[:3], hot[3:]):
            for key in batch:
                run.do("publish", key=key)
            end += len(batch)
            lags.append(broker_lag(bootstrap, topic, group_id, 0, end))
        seen["lags"] = lags
        seen["unslow"] = run.do("slow", target=f"billing/{slowed}", delay_ms=0)

        # Crash partition 1's owner at its next message, then bring it back under its name.
        crashing = next(m for m, parts in owners.items() if 1 in parts)
        seen["crashing"] = crashing
        seen["crash"] = run.do("crash", target=f"billing/{crashing}")
        run.do("publish", key=keys_for(1, G_PARTITIONS, 1, "doomed")[0])
        events = run.events(lambda evs: any(e["actor"] == f"group:billing/{crashing}" for e in of(evs, "crash")),
                            WAIT_S, f"{crashing} to crash")
        crash = next(e for e in of(events, "crash") if e["actor"] == f"group:billing/{crashing}")
        seen["menu_after_crash"] = run.menu()
        seen["restart"] = run.do("restart", target=f"billing/{crashing}")
        seen["restarted"] = rebalance_after(run, crash["seq"], f"{crashing} restarted and rejoined")

        seen["summary"] = run.finish(timeout=120)
        seen["events"] = run.events(lambda evs: bool(of(evs, "done")), WAIT_S, "the run's done event")
    return seen


@pytest.mark.django_db(transaction=True)
class InteractiveKafkaContract:
    mode = ""

    @pytest.fixture(scope="class")
    def driven(self, django_db_setup, django_db_blocker, tansu):
        url = tansu.bootstrap_servers if self.mode == "external" else None
        with django_db_blocker.unblock(), kafka_mode(self.mode, url) as bootstrap:
            yield {"partitions": drive_partitions(bootstrap), "groups": drive_groups(bootstrap)}

    # -- kafka-partitions ----------------------------------------------------------------

    def test_a_hand_published_key_lands_on_its_murmur2_partition_at_the_brokers_offset(self, driven) -> None:
        seen = driven["partitions"]
        events = seen["events"]
        publishes = {e["message_id"]: e for e in of(events, "publish")}
        reads = {e["message_id"]: e for e in of(events, "deliver")}
        # Ids continue the run's scheme; there were no scripted messages.
        assert [reply["message_id"] for _key, reply in seen["replies"]] == [f"m-{n}" for n in range(1, 8)]
        next_offset: dict[int, int] = defaultdict(int)
        for key, reply in seen["replies"]:
            published = publishes[reply["message_id"]]
            assert published["attrs"]["key"] == key
            partition = java_partition(key.encode("utf-8"), P_PARTITIONS)
            assert published["attrs"]["partition"] == reply["partition"] == partition, key
            # The delivery report's offset is where the reader fetched it back from the broker.
            read = reads[reply["message_id"]]["attrs"]
            assert (read["partition"], read["offset"]) == (partition, published["attrs"]["offset"])
            assert published["attrs"]["offset"] == reply["offset"] == next_offset[partition]
            next_offset[partition] += 1
            assert f"partition {partition}" in reply["result"]
        at_end = seen["summary"]["result"]["broker_at_end"]["kafka"]
        assert {int(p): e for p, e in at_end["end_offsets"].items()} == {
            p: next_offset.get(p, 0) for p in range(P_PARTITIONS)}

    def test_the_partitions_summary_counts_the_hand_published_records(self, driven) -> None:
        seen = driven["partitions"]
        summary, result = seen["summary"], seen["summary"]["result"]
        assert summary["state"] == "succeeded", summary.get("error")
        assert summary["counts"]["published"] == summary["counts"]["processed"] == len(HAND_KEYS)
        # Outside the plan: no progress past the (empty) plan.
        assert summary["progress"] == {"done": 0, "expected": 0}
        assert all(e["attrs"]["planned"] is False for e in of(seen["events"], "process"))
        assert result["interactive"]["ended_by"].startswith("finish")
        keys = result["keys"]
        assert keys["order-1"]["seqs"] == [1, 2] and keys["order-1"]["in_order"]
        for key in set(HAND_KEYS):
            assert keys[key]["partitions"] == [java_partition(key.encode(), P_PARTITIONS)], key
        assert result["read"] == result["confirmed"] == len(HAND_KEYS)
        assert seen["slow"]["result"].startswith("consumer:reader now spends 20 ms")

    def test_bad_publish_params_are_refused_naming_the_field(self, driven) -> None:
        seen = driven["partitions"]
        r = seen["refusals"]
        assert r["too_long"]["status"] == 400 and "too long" in r["too_long"]["errors"]["key"]
        assert r["no_key"]["status"] == 400 and "key" in r["no_key"]["errors"]
        assert r["bad_param"]["status"] == 400 and "partition" in r["bad_param"]["errors"]
        assert r["slow_too_much"]["status"] == 400 and "delay_ms" in r["slow_too_much"]["errors"]
        menu = seen["menu"]
        assert menu["publish"]["hands_on"] and set(menu["publish"]["params"]) == {"key", "value"}
        assert menu["slow"]["targets"] == ["consumer:reader"]

    def test_a_scripted_run_refuses_hands_on_actions(self, driven) -> None:
        answer = driven["partitions"]["scripted_publish"]
        assert answer["status"] == 400 and "interactive" in answer["errors"]["action"]

    # -- kafka-consumer-groups -----------------------------------------------------------

    def test_removing_and_adding_a_member_rebalances_over_every_partition_once(self, driven) -> None:
        seen = driven["groups"]
        events = seen["events"]
        for rebalance in (seen["left"], seen["joined"], seen["restarted"]):
            owners = rebalance["attrs"]["owners"]
            # Replayed from the members' own assign/revoke events, not from the rebalance summary.
            replayed = ownership_at(events, rebalance["seq"])
            assert {m: sorted(p) for m, p in replayed.items()} == owners, rebalance["attrs"]["cause"]
            claimed = [p for parts in owners.values() for p in parts]
            assert sorted(claimed) == list(range(G_PARTITIONS))  # every partition, none twice
        left, joined = seen["left"]["attrs"], seen["joined"]["attrs"]
        assert "member-8 left" in left["cause"] and "member-8" not in left["owners"] and left["moved"]
        assert len(left["owners"]) == G_MEMBERS - 1
        assert "member-8 joined" in joined["cause"] and joined["owners"]["member-8"] and joined["moved"]
        assert len(joined["owners"]) == G_MEMBERS
        assert any(e["attrs"]["why"] == "left the group" for e in of(events, "revoke"))

    def test_hand_published_keys_reach_their_murmur2_partition_and_its_owner(self, driven) -> None:
        seen = driven["groups"]
        owners = {p: m for m, parts in seen["joined"]["attrs"]["owners"].items() for p in parts}
        publishes = {e["message_id"]: e["attrs"] for e in of(seen["events"], "publish")}
        first_process = {}
        for e in of(seen["events"], "process"):
            first_process.setdefault(e["message_id"], e)
        for key, reply in seen["spread"]:
            partition = java_partition(key.encode(), G_PARTITIONS)
            assert publishes[reply["message_id"]]["partition"] == partition
            assert first_process[reply["message_id"]]["attrs"]["member"] == owners[partition]

    def test_a_slowed_members_lag_grows_while_publishing(self, driven) -> None:
        seen = driven["groups"]
        lags = seen["lags"]
        assert lags[0] <= 1 and lags[0] < lags[1] < lags[2], lags
        slowed = [e for e in of(seen["events"], "process") if e["attrs"].get("slowed_ms") == SLOW_MS]
        assert slowed and all(e["attrs"]["member"] == seen["slowed"] for e in slowed)
        assert seen["unslow"]["result"].endswith("back to full speed")

    def test_a_crashed_member_restarts_under_its_name(self, driven) -> None:
        seen = driven["groups"]
        crashing = seen["crashing"]
        assert f"billing/{crashing}" in seen["restart"]["result"]
        assert seen["menu_after_crash"]["restart"]["targets"] == [f"group:billing/{crashing}"]
        restarted = seen["restarted"]
        crash = next(e for e in of(seen["events"], "crash") if e["attrs"]["member"] == crashing)
        assigns = [e for e in of(seen["events"], "assign")
                   if e["attrs"]["member"] == crashing and crash["seq"] < e["seq"] <= restarted["seq"]]
        assert assigns, "the restarted member was never assigned anything"
        assert crashing in restarted["attrs"]["owners"]

    def test_bad_group_params_are_refused_naming_the_field(self, driven) -> None:
        r = driven["groups"]["refusals"]
        assert r["over_bound"]["status"] == 400 and "8" in r["over_bound"]["errors"]["group"]
        assert r["not_in_run"]["status"] == 400 and "shipping" in r["not_in_run"]["errors"]["group"]
        assert r["unknown"]["status"] == 400 and "group" in r["unknown"]["errors"]
        assert r["too_long"]["status"] == 400 and "too long" in r["too_long"]["errors"]["key"]
        assert r["nothing_to_restart"]["status"] == 400 and "target" in r["nothing_to_restart"]["errors"]
        assert r["slow_nobody"]["status"] == 400 and "target" in r["slow_nobody"]["errors"]
        menu = driven["groups"]["menu"]
        assert menu["add_member"]["params"]["group"]["choices"] == ["billing"]  # this run's groups only
        assert len(menu["slow"]["targets"]) == G_MEMBERS and menu["restart"]["targets"] == []

    def test_settle_waits_for_every_hand_published_record_and_offsets_agree_with_the_broker(self, driven) -> None:
        seen = driven["groups"]
        summary, result, events = seen["summary"], seen["summary"]["result"], seen["events"]
        assert summary["state"] == "succeeded", summary.get("error")
        published = {e["message_id"] for e in of(events, "publish")}
        assert len(published) == G_PARTITIONS + 6 + 1
        assert processed_ids(events) == published and result["lost"] == 0
        assert summary["progress"] == {"done": 0, "expected": 0}
        at_end = result["broker_at_end"]["kafka"]
        ends = {int(p): e for p, e in at_end["end_offsets"].items()}
        routed: dict[int, int] = defaultdict(int)
        for event in of(events, "route"):
            routed[event["attrs"]["partition"]] += 1
        assert ends == {p: routed.get(p, 0) for p in range(G_PARTITIONS)}
        (group,) = result["groups"]
        broker = {int(p): o for p, o in at_end["committed"][seen["group_id"]].items()}
        assert {int(p): o for p, o in group["committed"].items()} == broker
        assert {p: broker.get(p, 0) for p in range(G_PARTITIONS)} == ends  # every record committed: no lag left
        assert set(group["lag"].values()) <= {0}


class TestInteractiveKafkaExternal(InteractiveKafkaContract):
    mode = "external"


class TestInteractiveKafkaEmbedded(InteractiveKafkaContract):
    mode = "embedded"
