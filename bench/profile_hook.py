#!/usr/bin/env python3
"""profile_hook: what the server's processes do during a phase of bench/scale.py (BENCH_HOOK).

scale.py runs `profile_hook.py PHASE MASTER_PID ADMIN_PORT WORKDIR` after its idle window
("idle", waited for: the window's own figure is taken before, without it) and at the start of
the status, notify and events phases (alongside them, so those phases' figures are a profiled
run's). Everything goes to BENCH_HOOK_OUT (build/bench/profile/), one file per phase and tool:
- PHASE-cpu.json: CPU time (schedstat) and context switches of every server process over
  HOOK_SECONDS (3 s; 5 s idle), and the processes' states sampled every 20 ms meanwhile: how
  often a worker was running, runnable, or blocked in which system call (futex: a lock, the
  store's write lock among them; epoll_wait: idle).
- PHASE-perf.data (perf record -a -g) and PHASE-perf-stat.txt (system calls counted machine-wide).
- idle-strace-master.txt, idle-strace-worker.txt (strace -f -tt of the master and one worker, 5 s).
- PHASE-mdb_stat.txt (mdb_stat -ef of the store: its freelist and every database's depth).
Needs root for perf (perf_event_paranoid) and strace."""
import json
import os
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.environ.get("BENCH_HOOK_OUT", os.path.join(ROOT, "build", "bench", "profile"))
SYSCALL_NAMES = {0: "read", 1: "write", 7: "poll", 18: "pwrite64", 20: "writev", 44: "sendto",
                 45: "recvfrom", 46: "sendmsg", 47: "recvmsg", 202: "futex", 232: "epoll_wait",
                 281: "epoll_pwait", 296: "pwritev", 26: "msync", 75: "fdatasync", 74: "fsync",
                 9: "mmap", 11: "munmap", 10: "mprotect", 28: "madvise", 233: "epoll_ctl",
                 288: "accept4", 3: "close", 257: "openat", 35: "nanosleep", 230: "clock_nanosleep"}
COUNTED = ("futex", "pwritev", "pwrite64", "fdatasync", "msync", "sendto", "recvfrom",
           "epoll_wait", "write", "read", "writev", "madvise", "mmap", "munmap")


def workers(admin_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/status", timeout=10) as r:
        return [w["pid"] for w in json.load(r)["workers"]]


def cpu_and_switches(pid):
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            cpu_ns = int(f.read().split()[0])
        switches = {}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt", "nonvoluntary_ctxt")):
                    name, value = line.split(":")
                    switches[name] = int(value)
        return cpu_ns, switches
    except OSError:
        return 0, {}


def state_of(pid):
    """'R' when running or runnable, else the system call it waits in."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state == "R":
            return "running"
        with open(f"/proc/{pid}/syscall") as f:
            first = f.read().split()[0]
        if first == "running":
            return "running"
        number = int(first)
        return SYSCALL_NAMES.get(number, f"syscall {number}")
    except (OSError, ValueError, IndexError):
        return "gone"


def sample(master, pids, seconds):
    before = {p: cpu_and_switches(p) for p in pids + [master]}
    states = {}
    end = time.monotonic() + seconds
    samples = 0
    while time.monotonic() < end:
        for p in pids:
            s = state_of(p)
            states[s] = states.get(s, 0) + 1
        samples += 1
        time.sleep(0.02)
    after = {p: cpu_and_switches(p) for p in pids + [master]}
    procs = {}
    for p in pids + [master]:
        cpu = (after[p][0] - before[p][0]) / 1e6
        sw = {k: after[p][1].get(k, 0) - before[p][1].get(k, 0) for k in after[p][1]}
        procs[str(p)] = {"cpu_ms": round(cpu, 2), **sw}
    worker_cpu = sum(procs[str(p)]["cpu_ms"] for p in pids)
    return {"seconds": seconds, "master_cpu_ms": procs[str(master)]["cpu_ms"],
            "workers_cpu_ms": round(worker_cpu, 2),
            "worker_states_share": {k: round(v / (samples * len(pids)), 4)
                                    for k, v in sorted(states.items(), key=lambda kv: -kv[1])},
            "samples": samples, "processes": procs}


def start(args, out_name):
    return subprocess.Popen(args, stdout=open(os.path.join(OUT, out_name), "w"),
                            stderr=subprocess.STDOUT)


def perf_stat(phase, seconds):
    events = ",".join(f"syscalls:sys_enter_{n}" for n in COUNTED)
    return start(["perf", "stat", "-a", "-e", events, "--", "sleep", str(seconds)],
                 f"{phase}-perf-stat.txt")


def perf_record(phase, seconds):
    return start(["perf", "record", "-a", "-g", "-F", "499", "-o",
                  os.path.join(OUT, f"{phase}-perf.data"), "--", "sleep", str(seconds)],
                 f"{phase}-perf-record.txt")


def mdb_stat(phase, workdir):
    with open(os.path.join(OUT, f"{phase}-mdb_stat.txt"), "w") as f:
        subprocess.run(["mdb_stat", "-ef", os.path.join(workdir, "data")], stdout=f,
                       stderr=subprocess.STDOUT, timeout=60)
        subprocess.run(["mdb_stat", "-ea", os.path.join(workdir, "data")], stdout=f,
                       stderr=subprocess.STDOUT, timeout=60)


def main():
    phase, master, admin_port, workdir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        sys.argv[4]
    os.makedirs(OUT, exist_ok=True)
    pids = workers(admin_port)
    seconds = 5 if phase == "idle" else 3
    if phase == "idle":
        result = sample(master, pids, seconds)  # nothing else running meanwhile
        tools = [start(["strace", "-f", "-tt", "-p", str(master)], "idle-strace-master.txt"),
                 start(["strace", "-f", "-tt", "-p", str(pids[0])], "idle-strace-worker.txt"),
                 perf_record(phase, seconds), perf_stat(phase, seconds)]
        time.sleep(seconds)
        for t in tools[:2]:
            t.terminate()
        for t in tools:
            t.wait()
        mdb_stat(phase, workdir)
    else:
        tools = [perf_record(phase, seconds), perf_stat(phase, seconds)]
        result = sample(master, pids, seconds)
        for t in tools:
            t.wait()
    with open(os.path.join(OUT, f"{phase}-cpu.json"), "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
