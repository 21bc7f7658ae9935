#!/usr/bin/env python3
"""make bench-instructions: user-space instructions per status update (presenced) and per QoS 1
publish (Mosquitto), counted by valgrind's callgrind on the one server process that does the
work. Instruction counts do not depend on the machine's load, so this can be run on a busy
machine, unlike the timings of make bench.

Each server runs under callgrind; the load generator opens BENCH_INSN_DEVICES connections
(authenticated devices, or MQTT clients), the counters are zeroed, BENCH_INSN_UPDATES updates
are sent and answered, and the counters dumped. Two paces: "alone", one update in flight at a
time with a pause between (each update is its own store batch: the worst case), and "burst",
every connection sending at once (several updates share a batch, as at saturation). Prints one
JSON object: instructions per update for each server and pace, and the functions of presenced
that cost the most (inclusive, per update).

Then the store's share alone ("store"): build/bench/store_update drives
shm_presence_device_status without a server, and callgrind counts only that function (inclusive),
per update, for 2 and 10 devices a user, each update its own commit ("alone") or 100 a commit
("batched": the transaction's begin, first page copies and commit are then shared)."""
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from scale import Client, admin, identities

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "build", "presenced")
LOADGEN = os.path.join(ROOT, "build", "bench", "loadgen")
STORE_UPDATE = os.path.join(ROOT, "build", "bench", "store_update")
MOSQUITTO = "/usr/sbin/mosquitto"
AUDIENCE = "https://bench.example"
DEVICES = int(os.environ.get("BENCH_INSN_DEVICES", "200"))
UPDATES = int(os.environ.get("BENCH_INSN_UPDATES", "2000"))
# Devices a user: 2 as in the scale run; 10 is the population of the comparison with Mosquitto.
PER_USER = int(os.environ.get("BENCH_INSN_PER_USER", "2"))
TOP = 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def callgrind(out_pattern):
    return ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out_pattern,
            "--dump-instr=no", "--collect-atstart=yes"]


def total_ir(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise SystemExit(f"no totals in {path}")


def top_functions(path):
    """The functions with the most inclusive instructions in a dump."""
    run = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                         capture_output=True, text=True, check=True)
    rows = {}
    for line in run.stdout.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S+)", line)
        if m is not None:
            name = m.group(2).split(":")[-1]
            rows.setdefault(name, int(m.group(1).replace(",", "")))
    return rows


def wait_exit(proc):
    try:
        proc.wait(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise SystemExit("the server did not stop under valgrind")


# Callgrind cannot be told to zero or dump the counters of a forked process (its gdbserver does
# not follow fork), so each figure is the difference between two runs that differ only in the
# number of updates: whatever the runs share (start, connections, authentication, stop)
# cancels out.
PACES = {"alone": (50, "status 50 {seconds}"), "burst": (2000, "status 1000000 {seconds}")}


def one_run(workdir, start_server, loadgen_args, pace, updates):
    """Starts a server under callgrind, opens the connections, sends updates at the pace, stops
    everything; returns (instructions of the process that served them, updates answered,
    the dump)."""
    rate, command = PACES[pace]
    for old in glob.glob(f"{workdir}/cg.*"):
        os.unlink(old)
    proc, pid = start_server()
    client = None
    try:
        client = Client(loadgen_args)
        client.read()
        client.send(command.format(seconds=updates / rate))
        answered = client.read()["answered"]
        client.quit()
        client = None
    finally:
        if client is not None:
            client.proc.kill()
        proc.send_signal(signal.SIGTERM)
        wait_exit(proc)
    dump = f"{workdir}/cg.{pid}"
    return total_ir(dump), answered, dump


def differential(workdir, start_server, loadgen_args, top):
    """Instructions per update at each pace; with top, also the functions that cost the most
    per update (inclusive), from the same difference."""
    result = {}
    for pace in PACES:
        ir1, n1, dump1 = one_run(workdir, start_server, loadgen_args, pace, UPDATES // 4)
        first = top_functions(dump1) if top else None
        ir2, n2, dump2 = one_run(workdir, start_server, loadgen_args, pace, UPDATES)
        updates = max(n2 - n1, 1)
        result[pace] = {"updates": [n1, n2], "instructions_per_update": round((ir2 - ir1) /
                                                                              updates)}
        if top:
            second = top_functions(dump2)
            per = {name: (ir - first.get(name, 0)) / updates for name, ir in second.items()}
            result[pace]["top_inclusive"] = [
                (name, round(ir)) for name, ir in sorted(per.items(), key=lambda kv: -kv[1])
                [:TOP]]
            shutil.copy(dump2, f"{ROOT}/build/bench/callgrind.presenced.{pace}")
    return result


def presenced(workdir):
    assertions = identities(workdir, (DEVICES + PER_USER - 1) // PER_USER)
    port, admin_port = free_port(), free_port()
    conf = os.path.join(workdir, "presenced.conf")
    with open(conf, "w") as f:
        f.write(f"listen 127.0.0.1:{port}\nadmin_listen 127.0.0.1:{admin_port}\nworkers 1\n"
                f"data_dir {workdir}/data\npid_file {workdir}/pid\nlog_level warning\n"
                f"audience {AUDIENCE}\ntrusted_issuer issuer.example {workdir}/issuer.json\n"
                "status_rate 1000000\nstatus_burst 1000000\nmap_size 64M\n"
                "ping_interval 1h\n")

    def start_server():
        shutil.rmtree(f"{workdir}/data", ignore_errors=True)
        os.makedirs(f"{workdir}/data")
        proc = subprocess.Popen(callgrind(f"{workdir}/cg.%p") + [BINARY, "-f", "-c", conf],
                                stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                ready = [w for w in admin(admin_port, "/status")["workers"]
                         if w["state"] == "ready"]
                if ready:
                    return proc, ready[0]["pid"]
            except OSError:
                pass
            time.sleep(0.1)
        proc.kill()
        raise SystemExit("presenced did not start under valgrind")

    return differential(workdir, start_server,
                        ["devices", port, "127.0.0.31", DEVICES, 0, PER_USER, assertions], True)


def mosquitto(workdir):
    port = free_port()
    conf = os.path.join(workdir, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(f"listener {free_port()} 127.0.0.1\nlistener {port}\nprotocol websockets\n"
                "allow_anonymous true\nmax_connections -1\npersistence false\n"
                "log_dest none\nuser root\n")

    def start_server():
        proc = subprocess.Popen(callgrind(f"{workdir}/cg.%p") + [MOSQUITTO, "-c", conf],
                                stderr=subprocess.DEVNULL)
        for _ in range(600):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return proc, proc.pid
            time.sleep(0.1)
        proc.kill()
        raise SystemExit("mosquitto did not start under valgrind")

    return differential(workdir, start_server, ["mqtt", port, "127.0.0.32", DEVICES, 0], False)


def store_share():
    """Instructions of shm_presence_device_status per update, by devices a user and commit."""
    result = {}
    for per_user in (2, 10):
        for name, per_commit in (("alone", 1), ("batched", 100)):
            with tempfile.TemporaryDirectory(prefix="presenced-insn-store-") as workdir:
                dump = f"{workdir}/cg.out"
                run = subprocess.run(
                    ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + dump,
                     "--toggle-collect=shm_presence_device_status", STORE_UPDATE,
                     f"{workdir}/store", str(200 // per_user), str(per_user), str(UPDATES * 2),
                     str(per_commit)], capture_output=True, text=True, check=True)
                updates = int(run.stdout.split()[1])
                result[f"{per_user}_a_user_{name}"] = round(total_ir(dump) / updates)
    return result


def main():
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="presenced-insn-") as workdir:
        ours = presenced(workdir)
    result = {"devices": DEVICES, "devices_a_user": PER_USER, "presenced": ours,
              "store": store_share()}
    if os.path.exists(MOSQUITTO):
        with tempfile.TemporaryDirectory(prefix="presenced-insn-mq-") as workdir:
            theirs = mosquitto(workdir)
        result["mosquitto"] = theirs
        for pace in ("alone", "burst"):
            result[f"ratio_{pace}"] = round(ours[pace]["instructions_per_update"] /
                                            theirs[pace]["instructions_per_update"], 2)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())
