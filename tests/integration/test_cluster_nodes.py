"""Three presenced nodes on one 3-server JetStream cluster (SPEC 8): the cluster boots (buckets
and streams made idempotently, a layout every node must agree with), agents register epochs and
hear each other, a node killed with -9 is declared dead by the others within node_timeout and
comes back with a new epoch, a node frozen past node_timeout fences itself, and the nodes
reconnect by themselves after every engine server restarted."""
import os
import re
import signal
import subprocess
import time

import pytest

from cluster_fixtures import (NODE_TIMEOUT_S, cluster3, fresh_engine, make_node,  # noqa: F401
                              start_node, wait_peers_alive, wait_serving)
from conftest import ROOT, wait_for


def test_cluster_boot(cluster3):
    engine, nodes = cluster3
    for n in nodes:
        wait_serving(n)
    for n in nodes:
        wait_peers_alive(n, ["n1", "n2", "n3"])
    status = nodes[0].cluster()
    assert status["engine"]["connected"] is True
    assert status["engine"]["server"].startswith("nats://127.0.0.1:")
    assert status["epoch"] >= 1
    # Every bucket and the queue stream, each at R3, made once however many nodes started.
    for name in ("KV_pd_meta", "KV_pd_nodes", "KV_pd_u0", "KV_pd_u1", "KV_pd_u2", "PD_Q"):
        info = engine.stream_info(name)
        assert info.get("config", {}).get("num_replicas") == 3, (name, info)
    layout = engine.probe("get", "pd_meta", "layout", "leader")
    assert layout["value"] == '{"shards":3,"schema":1}'
    queue = engine.stream_info("PD_Q")["config"]
    assert queue["max_msgs_per_subject"] == 100 and queue["discard"] == "new"
    # Each node's record in the engine: alive, its epoch, refreshed.
    rec = engine.probe("get", "pd_nodes", "n2", "leader")
    assert '"state":"alive"' in rec["value"]
    # /metrics adds the cluster's series (read with prometheus_client's parser), each
    # described in presenced(8) METRICS; a node of three sees three alive.
    assert wait_for(lambda: nodes[0].metric("presenced_cluster_nodes", state="alive") == 3,
                    timeout=10), nodes[0].metrics()
    assert nodes[0].metric("presenced_cluster_serving") == 1
    assert nodes[0].metric("presenced_cluster_engine_connected") == 1
    assert nodes[0].metric("presenced_cluster_fences_total") == 0
    families = {line.split()[2] for line in nodes[0].admin("/metrics").splitlines()
                if line.startswith("# TYPE presenced_cluster_")}
    assert len(families) >= 12, families
    page = open(os.path.join(ROOT, "man", "presenced.8")).read()
    section = page.split(".SH METRICS", 1)[1].split("\n.SH ", 1)[0].replace("\\", "")
    assert not [f for f in families if not re.search(rf"\b{f}\b", section)], families


def test_a_node_of_another_layout_refuses_to_start(cluster3, workdir):
    engine, nodes = cluster3
    wait_serving(nodes[0])
    odd = make_node(workdir, engine, "n9", 0)
    odd.write_config(cluster_shards="5")
    start_node(odd, wait=False)
    try:
        assert wait_for(lambda: odd.proc.poll() is not None, timeout=30), odd.log_text()
        assert "cluster_shards 3" in odd.log_text()
        assert odd.proc.returncode != 0
    finally:
        odd.stop()


def test_kill_9_of_a_node_seen_by_the_others_then_it_rejoins(cluster3):
    engine, (n1, n2, n3) = cluster3
    for n in (n1, n2, n3):
        wait_serving(n)
    wait_peers_alive(n1, ["n2", "n3"])
    wait_peers_alive(n3, ["n1", "n2"])
    epoch = n2.cluster()["epoch"]
    n2.kill_group(signal.SIGKILL)
    n2.proc.wait(timeout=10)
    killed = time.monotonic()

    def n2_dead_everywhere():
        return all(n.peers().get("n2", {}).get("state") == "dead" for n in (n1, n3))
    assert wait_for(n2_dead_everywhere, timeout=NODE_TIMEOUT_S + 10, step=0.05), (
        n1.peers(), n3.peers())
    seen = time.monotonic() - killed
    # Declared by exactly one node (the cleaner: the lowest-named live one), n1.
    assert n1.peers()["n2"]["declared_by"] == "n1"
    print(f"node kill -9 declared dead on the others after {seen:.2f} s (node_timeout {NODE_TIMEOUT_S} s)")
    assert seen < NODE_TIMEOUT_S + 4
    # No false declaration of the survivors.
    assert n1.peers()["n3"]["state"] == "alive" and n3.peers()["n1"]["state"] == "alive"
    n2.log.close()
    start_node(n2)
    wait_serving(n2)
    assert n2.cluster()["epoch"] == epoch + 1
    wait_peers_alive(n1, ["n2"])
    wait_peers_alive(n3, ["n2"])


def test_a_frozen_node_fences_itself_and_takes_a_new_epoch(cluster3):
    engine, (n1, n2, n3) = cluster3
    for n in (n1, n2, n3):
        wait_serving(n)
    wait_peers_alive(n1, ["n2", "n3"])
    epoch = n2.cluster()["epoch"]
    n2.kill_group(signal.SIGSTOP)
    try:
        assert wait_for(lambda: n1.peers()["n2"]["state"] == "dead", timeout=NODE_TIMEOUT_S + 10,
                        step=0.1), n1.peers()
    finally:
        n2.kill_group(signal.SIGCONT)
    # Back, it learns it was declared dead (or that it did not hear itself): it fences, then
    # serves again under a new epoch.
    assert wait_for(lambda: n2.cluster().get("fences", 0) >= 1, timeout=15, step=0.05), n2.cluster()
    wait_serving(n2)
    assert n2.cluster()["epoch"] > epoch
    wait_peers_alive(n1, ["n2"])
    assert "fenced:" in n2.log_text()


def test_every_engine_server_restarted_nodes_reconnect(cluster3):
    engine, nodes = cluster3
    for n in nodes:
        wait_serving(n)
    for s in engine.servers:
        s.kill(signal.SIGTERM)
    assert wait_for(lambda: all(not n.cluster()["engine"]["connected"] for n in nodes),
                    timeout=15, step=0.1)
    for s in engine.servers:
        s.start()
    engine.wait_ready()
    for n in nodes:
        assert wait_for(lambda: n.cluster()["engine"]["connected"], timeout=30, step=0.1), \
            n.log_text()[-3000:]
    for n in nodes:
        wait_serving(n, timeout=40)
    for n in nodes:
        wait_peers_alive(n, ["n1", "n2", "n3"], timeout=30)
    # Nobody was declared dead by an engine-wide outage: the bus-health rule.
    for n in nodes:
        for name, peer in n.peers().items():
            assert peer["declared_by"] == "", (n.settings["node_name"], name, peer)
