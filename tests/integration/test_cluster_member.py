"""A worker's operations on the cluster's state (cluster/member.c, ownership.c, queue.c), driven
by tests/tools/member_probe as one more worker of each of three nodes: racing claims of one
(e-mail, device) on three nodes leave exactly one holder in the record, and those told to close
(52) had held it; a notification queued on one node is read from the queue on another, and delivered live
to a holder on a third."""
import json
import os
import subprocess
import threading

from cluster_fixtures import cluster3, fresh_engine, user_record, wait_serving  # noqa: F401
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
    holder = subprocess.Popen([os.path.join(TOOLS, "member_probe"), n3.config_path, "claim",
                               "note@example.com", "tablet", "1", "8000"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []

    def read():
        for line in holder.stdout:
            lines.append(json.loads(line))
    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert wait_for(lambda: any("claim" in x for x in lines), timeout=30), lines
        assert lines[0]["number"] == 0, lines
        sent = n1.member("notify", "note@example.com", '{"n":1}')
        assert sent[0]["notify"] == 0 and sent[0]["seq"] > 0, sent
        assert wait_for(lambda: any("deliver" in x for x in lines), timeout=15), lines
        got = [x for x in lines if "deliver" in x][0]
        assert got["json"] == {"n": 1} and got["seq"] == sent[0]["seq"] and got["deliver"] == 1
        queued = n2.member("pending", "note@example.com")
        assert [x["json"] for x in queued if "pending" in x] == [{"n": 1}], queued
        assert queued[-1] == {"page": 0, "more": False, "last": sent[0]["seq"]}
    finally:
        holder.wait(timeout=60)
        reader.join()
        assert "Sanitizer" not in holder.stderr.read()
