"""The worker's seam (issue 13): the channels and the pages reach shared state and other
connections only through the backend (worker/backend/backend.h), so that a cluster is a second
implementation of it rather than `if (cluster)` through them; the session machinery knows no
channel, and protocol.c is the one file that says which channel serves which path. Read from the
sources, comments left out."""
import os
import re

from conftest import ROOT

WORKER = os.path.join(ROOT, "worker")

# What the store holds that a cluster shares: ownership, presence, notification queues, mail to
# other processes, AppService connections and events, apps, grants, web sessions.
SHARED_STATE = re.compile(
    r"\b(shm_conn_(?!owner\b)\w+|shm_presence_\w+|shm_notif_(send|add|page|pending|exists|delete)"
    r"|shm_mail_(post|take|drop)|shm_app_\w+|shm_grant_\w+|shm_web_session_(get|put|delete))\s*\(")


def local_names():
    """The local implementation's own functions (declared in worker/backend/local.h), or its
    header included."""
    with open(os.path.join(WORKER, "backend", "local.h"), encoding="utf-8") as f:
        names = re.findall(r"^\w[\w\s\*]*?\b(\w+)\(", f.read(), flags=re.M)
    assert "local_set_status" in names and "presence_device_status" in names, names
    return re.compile(r"\b(%s)\s*\(|backend/local\.h" % "|".join(names))

CHANNELS = re.compile(r"\b(device_channel|appservice_channel)\b")


def sources(folder):
    for dirpath, _, names in os.walk(folder):
        for name in sorted(names):
            if name.endswith((".c", ".h")):
                path = os.path.join(dirpath, name)
                yield os.path.relpath(path, WORKER), code_of(path)


def code_of(path):
    """The file's text without its comments and string literals."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return re.sub(r'"(\\.|[^"\\\n])*"', '""', text)


def callers(pattern, folder, allowed):
    return sorted({name for name, code in sources(folder)
                   if pattern.search(code) and not name.startswith(allowed)})


def test_channels_and_pages_reach_shared_state_only_through_the_backend():
    # worker.c opens and closes the store and publishes the worker's own record; the Web Push
    # subscriptions and jobs (shm_push_*) are the node's own.
    for folder in ("device", "appservice", "web", "session", "identity", "push"):
        assert callers(SHARED_STATE, os.path.join(WORKER, folder), ()) == [], folder
    assert callers(local_names(), WORKER, ("backend/",)) == []


def test_the_session_machinery_names_no_channel():
    for name, code in sources(os.path.join(WORKER, "session")):
        assert not CHANNELS.search(code), name
        assert not re.search(r'#include\s+"\.\./(device|appservice|web)/', code), name


def test_protocol_c_is_the_one_file_that_routes_paths_to_channels():
    # Each channel names itself (its table, and finding its own sessions); nobody else does.
    named = callers(CHANNELS, WORKER, ("device/", "appservice/"))
    assert named == ["protocol.c"]
