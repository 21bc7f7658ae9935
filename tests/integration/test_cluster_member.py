"""A worker's operations on the cluster's state (cluster/member.c, ownership.c, queue.c), driven
by tests/tools/member_probe as one more worker of each of three nodes: racing claims of one
(e-mail, device) on three nodes leave exactly one holder in the record, and those told to close
(52) had held it; a notification queued on one node is read from the queue on another, and delivered live
to a holder on a third."""
import json
import os
import signal
import subprocess
import threading

from cluster_fixtures import Holder, cluster3, fresh_engine, user_record, wait_serving  # noqa: F401
from conftest import TOOLS, wait_for


def probe_lines(node, *args):
    return node.member(*args)


def test_racing_claims_on_three_nodes_leave_one_holder(cluster3):
    engine, nodes = cluster3
    for n in nodes:
        wait_serving(n)
    results = {}

    def run(n):
        results[n.settings["node_name"]] = n.member("claim", "race@example.com", "phone", "10",
                                                    "-1000")
    threads = [threading.Thread(target=run, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won, closes = set(), 0
    for name, lines in results.items():
        mine = {line["claim"] for line in lines if "claim" in line and line["number"] == 0}
        closed = {line["close"] for line in lines if "close" in line}
        assert all(line["errno"] == 52 for line in lines if "close" in line), lines
        assert closed <= mine, (name, lines)
        won |= {(name, c) for c in mine}
        closes += len(closed)
        assert len([line for line in lines if "claim" in line]) == 10, lines
    entries = [e for e in user_record(engine, "race@example.com") if e["device"] == "phone"]
    assert len(entries) == 1, entries
    assert (entries[0]["node"], entries[0]["conn"]) in won, (entries, won)
    print(f"30 racing claims on 3 nodes: {len(won)} won in turn, {closes} told to close, "
          f"one holder {entries[0]['node']}/{entries[0]['conn']}")


def test_a_notification_queued_on_one_node_is_read_and_delivered_on_others(cluster3):
    engine, (n1, n2, n3) = cluster3
    for n in (n1, n2, n3):
        wait_serving(n)
    with Holder(n3, "note@example.com", "tablet") as holder:
        assert holder.first("claim", timeout=30)["number"] == 0, holder.lines
        sent = n1.member("notify", "note@example.com", '{"n":1}')
        assert sent[0]["notify"] == 0 and sent[0]["seq"] > 0, sent
        got = holder.first("deliver", timeout=15)
        assert got["json"] == {"n": 1} and got["seq"] == sent[0]["seq"] and got["deliver"] == 1
        # Its EARLY copy came first, as the publish started: the same notification, no sequence.
        early = holder.first("early", timeout=1)
        assert early == {"early": 1, "json": {"n": 1}}, holder.lines
        assert holder.lines.index(early) < holder.lines.index(got), holder.lines
        queued = n2.member("pending", "note@example.com")
        assert [x["json"] for x in queued if "pending" in x] == [{"n": 1}], queued
        assert queued[-1] == {"page": 0, "more": False, "last": sent[0]["seq"]}


def test_kill_9_of_the_queue_leader_loses_no_acknowledged_notification(cluster3):
    """A worker of n1 queues notifications one after the other while a worker of n3 holds the
    user's device; the engine server leading PD_Q is killed after the first 50: every
    notification acknowledged is delivered to the holder live or is still in its queue (none
    lost), the queue resumes, and the pause is measured."""
    engine, (n1, n2, n3) = cluster3
    for n in (n1, n2, n3):
        wait_serving(n)
    leader = engine.stream_leader("PD_Q")
    doomed = next(s for s in engine.servers if s.name == leader)
    acks = []
    sender = None
    holder = Holder(n3, "load@example.com", "phone", hold_ms=-60000, kill=True)
    lines = holder.lines
    try:
        holder.first("claim", timeout=30)
        sender = subprocess.Popen([os.path.join(TOOLS, "member_probe"), n1.config_path,
                                   "notify-loop", "load@example.com", "90"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in sender.stdout:
            ack = json.loads(line)
            acks.append(ack)
            if ack.get("i") == 30:
                doomed.kill(signal.SIGKILL)
        assert sender.wait(timeout=120) == 0
        acked = {a["seq"] for a in acks if a.get("notify") == 0}
        assert acks[-1].get("notify") == 0, acks[-5:]  # the service resumed
        # Each acknowledged one reached the holder live, or is still queued for its next connect
        # (a DELIVER sent on the connection of a dying server can be lost: it stays queued).
        wait_for(lambda: acked <= {x["seq"] for x in lines if "deliver" in x}, timeout=10)
        live = {x["seq"] for x in lines if "deliver" in x}
        queued = {x["pending"] for x in n2.member("pending", "load@example.com") if "pending" in x}
        assert acked <= live | queued, sorted(acked - live - queued)
        times = [a["ms"] for a in acks]
        pause = max(b - a for a, b in zip(times, times[1:]))
        print(f"PD_Q leader {leader} killed: {len(acked)} of {len(acks)} acknowledged, none lost "
              f"({len(acked - live)} not live, queued); longest wait for an acknowledgement "
              f"{pause} ms")
    finally:
        holder.__exit__(None, None, None)
        if sender is not None:
            sender.kill()
            sender.wait()
        doomed.start()
        engine.wait_ready()
