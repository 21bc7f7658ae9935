"""demo: what `make demo` runs — presenced (with the development issuer, as etc/presenced.conf
has it) unless one already serves that configuration, the chat room's app provisioned with
presencectl (made once, then kept in the state directory), then the chat room until Ctrl-C.

    python3 examples/chat/demo.py [-c etc/presenced.conf] [--port 8290] [--state var/chat-demo]
"""
import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import chat  # noqa: E402


def config_value(path, key):
    """A key of a presenced.conf (one "key value" per line, '#' comments): presenced.conf(5)."""
    with open(path) as f:
        for line in f:
            words = line.split(None, 1)
            if len(words) == 2 and words[0] == key:
                return words[1].strip()
    return None


class Presenced:
    """presencectl against one configuration, and the presenced this demo started, if any."""

    def __init__(self, args):
        self.args = args
        self.child = None

    def ctl(self, *words):
        done = subprocess.run([self.args.presencectl, "-c", self.args.config, "--json", *words],
                              capture_output=True, text=True, timeout=30)
        return done.returncode, (json.loads(done.stdout) if done.stdout.strip() else None)

    def up(self):
        return self.ctl("status")[0] == 0

    def start(self):
        if self.up():
            print(f"demo: presenced already serves {self.args.config}", flush=True)
            return
        self.child = subprocess.Popen([self.args.presenced, "-f", "-c", self.args.config])
        deadline = time.monotonic() + 30
        while not self.up():
            if self.child.poll() is not None or time.monotonic() > deadline:
                sys.exit("demo: presenced did not start (see its log above)")
            time.sleep(0.1)

    def stop(self):
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
            self.child.wait(timeout=20)

    def app(self, state_dir, domain):
        """The chat's appid and API key: the one made before if it is still there and active,
        else a new operator's app (validated and active; its key is shown once, so it is kept
        here, readable by this user only)."""
        path = os.path.join(state_dir, "app.json")
        if os.path.exists(path):
            with open(path) as f:
                saved = json.load(f)
            rc, shown = self.ctl("app", "show", saved["appid"])
            if rc == 0 and shown["active"] and shown["domain"] == domain:
                return saved
        rc, made = self.ctl("app", "create", "--name", "Chat", "--domain", domain,
                            "--description", "The chat room of the demo (examples/chat)")
        if rc != 0:
            sys.exit(f"demo: presencectl app create failed: {made}")
        saved = {"appid": made["appid"], "api_key": made["api_key"]}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(saved, f)
        return saved


def options():
    p = argparse.ArgumentParser(description="The chat room demo of presenced.")
    p.add_argument("-c", "--config", default=os.path.join(ROOT, "etc", "presenced.conf"))
    p.add_argument("--host", default="127.0.0.1",
                   help="the chat's address: a loopback one (the app's domain)")
    p.add_argument("--port", type=int, default=8290)
    p.add_argument("--state", default=os.path.join(ROOT, "var", "chat-demo"))
    p.add_argument("--presenced", default=os.path.join(ROOT, "build", "presenced"))
    p.add_argument("--presencectl", default=os.path.join(ROOT, "build", "presencectl"))
    return p.parse_args()


def main():
    args = options()
    public_url = config_value(args.config, "public_url")
    if public_url is None or config_value(args.config, "dev_issuer") != "on":
        sys.exit(f"demo: {args.config} needs public_url and dev_issuer on (as etc/presenced.conf)")
    os.makedirs(args.state, exist_ok=True)
    presenced = Presenced(args)
    presenced.start()
    try:
        app = presenced.app(args.state, args.host)
        chat_url = f"http://{args.host}:{args.port}"
        settings = {**app, "presence_url": public_url, "chat_url": chat_url,
                    "host": args.host, "port": args.port,
                    "state": os.path.join(args.state, "room.json"),
                    "presenced": args.presenced, "presenced_conf": args.config,
                    "presence_js": os.path.join(ROOT, "clients", "js", "presence.js")}

        def ready():
            print(f"\nThe chat room is at {chat_url}/ — open it in two browsers (or one of them"
                  " in a private window),\njoin as two people, allow the app, and ring each"
                  " other. Ctrl-C stops the demo.\n", flush=True)
        loop = asyncio.new_event_loop()
        task = loop.create_task(chat.serve(settings, ready))
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass
        finally:
            loop.close()
    finally:
        presenced.stop()


if __name__ == "__main__":
    main()
