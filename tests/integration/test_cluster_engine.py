"""The engine client (cluster/engine.c, cluster/js.c) against a real 3-server JetStream cluster:
buckets made idempotently at R3, compare-and-set, delete markers, direct and leader gets, and a
client that keeps working when the server it is connected to dies."""
import json

import pytest

from conftest import wait_for
from engine_fixtures import engine  # noqa: F401  (fixture)


def test_bucket_is_made_once_and_again_is_a_no_op(engine):
    first = engine.probe("bucket", "t_boot", "3")
    assert first["outcome"] == "ok", first
    again = engine.probe("bucket", "t_boot", "3")
    assert again["outcome"] == "ok", again
    info = engine.stream_info("KV_t_boot")
    assert info["config"]["num_replicas"] == 3
    assert info["config"]["max_msgs_per_subject"] == 1
    assert info["config"]["allow_direct"] is True
    assert len(info["cluster"]["replicas"]) == 2  # and the leader


def test_compare_and_set(engine):
    assert engine.probe("bucket", "t_cas", "3")["outcome"] == "ok"
    made = engine.probe("put", "t_cas", "k", "v1", "0")
    assert made["outcome"] == "ok" and made["seq"] > 0
    lost = engine.probe("put", "t_cas", "k", "v2", "0")
    assert lost["outcome"] == "conflict" and lost["err_code"] == 10071
    stale = engine.probe("put", "t_cas", "k", "v2", str(made["seq"] - 1 if made["seq"] > 1 else 99))
    assert stale["outcome"] == "conflict"
    won = engine.probe("put", "t_cas", "k", "v2", str(made["seq"]))
    assert won["outcome"] == "ok" and won["seq"] > made["seq"]
    leader = engine.probe("get", "t_cas", "k", "leader")
    assert leader["outcome"] == "ok" and leader["value"] == "v2" and leader["seq"] == won["seq"]
    direct = engine.probe("get", "t_cas", "k", "direct")
    assert direct["outcome"] == "ok" and direct["seq"] <= won["seq"]


def test_delete_marker_then_create_with_its_revision(engine):
    assert engine.probe("bucket", "t_del", "3")["outcome"] == "ok"
    made = engine.probe("put", "t_del", "k", "v", "0")
    gone = engine.probe("del", "t_del", "k", str(made["seq"]))
    assert gone["outcome"] == "ok"
    for how in ("leader", "direct"):
        got = engine.probe("get", "t_del", "k", how)
        assert got["outcome"] == "ok" and got["deleted"] and got["seq"] == gone["seq"], got
    assert engine.probe("put", "t_del", "k", "again", "0")["outcome"] == "conflict"
    assert engine.probe("put", "t_del", "k", "again", str(gone["seq"]))["outcome"] == "ok"
    for how in ("leader", "direct"):
        assert engine.probe("get", "t_del", "nothing", how)["outcome"] == "not_found"


def test_a_dead_server_in_the_list_is_skipped(engine):
    assert engine.probe("bucket", "t_skip", "3")["outcome"] == "ok"
    dead = engine.servers[0]
    dead.kill()
    try:
        # When the dead server led the stream, its writes wait for the next leader's election
        # (seconds, more on a loaded machine): wait for one, so that what is tested is the
        # client leaving the dead server, not the election's speed.
        assert wait_for(lambda: engine.stream_leader("KV_t_skip") not in ("", dead.name),
                        timeout=30, step=0.2), engine.stream_info("KV_t_skip")
        got = engine.probe("put", "t_skip", "k", "v", "0", servers=engine.urls(0))
        assert got["outcome"] == "ok", got
    finally:
        dead.start()
        engine.wait_ready()


def test_unreachable_engine_is_reported_not_waited_for(engine):
    # The first attempt fails at once and says so; waiting longer would only show its retries.
    got = engine.probe("ping", "x", servers="nats://127.0.0.1:1", give_up_ms=2000)
    assert got["rc"] == 1
    assert "cannot connect" in got["stderr"]


def test_a_changefeed_reads_a_bucket_and_one_stopped_early_leaves_nothing(engine):
    # The probe first stops a feed whose consumer's create is still on its way (what a node
    # stopping or a feed made again does), under ASan: probe() fails on a leak report.
    assert engine.probe("bucket", "t_feed", "3")["outcome"] == "ok"
    last = None
    for key in ("a", "b", "c"):
        last = engine.probe("put", "t_feed", key, "v", "0")
        assert last["outcome"] == "ok", last
    got = engine.probe("feed", "t_feed")
    assert got["outcome"] == "ok" and got["rc"] == 0, got
    assert got["seq"] == last["seq"] and got["applied"] == 3, got
