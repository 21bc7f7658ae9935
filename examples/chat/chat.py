"""chat: the chat room of the demo — an app's server (an AppService, SPEC §5) and its web page.

People join through presenced's consent page and come back with a PUID: the room knows each
member by that PUID and the name they gave, never by e-mail. Its AppService connection to
presenced hears each member's presence (online, unavailable, offline) and sends rings as
notifications; the pages hear both over their own WebSocket to this server. Python 3 and
Debian's python3-websockets only: one asyncio server answers the pages' GETs (process_request)
and their WebSocket on the same port.
"""
import asyncio
import http
import json
import logging
import os
import random
import re
import urllib.parse

import websockets

import dev_token

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
NAME_RE = re.compile(r"^[^\x00-\x1f<>&\"']{1,40}$")
PUID_RE = re.compile(r"^[0-9a-f-]{36}$")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8"}
log = logging.getLogger("chat")


class Room:
    """The members (PUID → name, status), kept in a JSON file, and the pages open now."""

    def __init__(self, state_path):
        self.state_path = state_path
        self.members = {}
        self.pages = set()
        if os.path.exists(state_path):
            with open(state_path) as f:
                saved = json.load(f)
            self.members = {uid: {"name": name, "status": "offline"}
                            for uid, name in saved.get("members", {}).items()}

    def save(self):
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"members": {uid: m["name"] for uid, m in self.members.items()}}, f)
        os.replace(tmp, self.state_path)

    def join(self, puid, name):
        known = puid in self.members
        self.members.setdefault(puid, {"name": name, "status": "offline"})["name"] = name
        self.save()
        if not known:
            self.broadcast({"type": "member", "uid": puid, **self.members[puid]})

    def presence(self, puid, status):
        member = self.members.get(puid)
        if member is None or member["status"] == status:
            return
        member["status"] = status
        self.broadcast({"type": "presence", "uid": puid, "status": status})

    def listing(self):
        return [{"uid": uid, **m} for uid, m in sorted(self.members.items(),
                                                       key=lambda kv: kv[1]["name"].lower())]

    def broadcast(self, message):
        text = json.dumps(message)
        for ws in list(self.pages):
            asyncio.ensure_future(send_quietly(ws, text))


async def send_quietly(ws, text):
    try:
        await ws.send(text)
    except websockets.ConnectionClosed:
        pass


class AppService:
    """The app's connection to presenced (/myapps/<appid>): events in, rings out. It reconnects
    after a restart of presenced and asks for a snapshot each time."""

    def __init__(self, room, ws_url, api_key):
        self.room, self.ws_url, self.api_key = room, ws_url, api_key
        self.ws = None
        self.waiting = {}  # notify id -> future of its reply
        self.count = 0

    async def run(self):
        delay = 0.5
        while True:
            try:
                async with websockets.connect(self.ws_url) as ws:
                    await ws.send(json.dumps({"action": "auth", "token": self.api_key}))
                    reply = json.loads(await ws.recv())
                    if reply.get("result") != "OK":
                        log.error("presenced refused the API key: %s", reply)
                        raise SystemExit(1)
                    self.ws, delay = ws, 0.5
                    log.info("AppService connected to %s", self.ws_url)
                    await ws.send(json.dumps({"action": "snapshot"}))
                    async for text in ws:
                        self.received(json.loads(text))
            except (OSError, websockets.ConnectionClosed, asyncio.TimeoutError) as e:
                log.info("AppService connection lost (%s); again in %.1f s", e, delay)
            self.ws = None
            for future in self.waiting.values():
                if not future.done():
                    future.set_result({"result": "KO", "error": "presenced is away"})
            self.waiting.clear()
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, 10)

    def received(self, m):
        if "uid" in m and "status" in m:
            self.room.presence(m["uid"], m["status"])
        elif m.get("action") == "snapshot":
            for entry in m.get("presence", []):
                self.room.presence(entry["uid"], entry["status"])
        elif m.get("action") == "notify" and m.get("id") in self.waiting:
            self.waiting.pop(m["id"]).set_result(m)

    async def snapshot(self):
        """Asks for every member's status again (a new member may be present already)."""
        if self.ws is not None:
            await send_quietly(self.ws, json.dumps({"action": "snapshot"}))

    async def ring(self, source_name, target, url):
        if self.ws is None:
            return {"result": "KO", "error": "presenced is away"}
        self.count += 1
        request_id = f"ring-{self.count}"
        future = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = future
        await self.ws.send(json.dumps({
            "action": "notify", "target": target, "source": source_name,
            "message": f"{source_name} is ringing you", "url": url, "ttl": 60,
            "id": request_id}))
        return await asyncio.wait_for(future, 10)


class Chat:
    """The web side: pages, the join flow through presenced's consent page, the pages'
    WebSocket, and the development token for the page's device."""

    def __init__(self, room, app, settings):
        self.room, self.app, self.settings = room, app, settings

    # ---- HTTP (GET only: websockets answers what is not a WebSocket here)

    async def http(self, path, headers):
        if headers.get("Upgrade", "").lower() == "websocket":
            return None
        url = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(url.query))
        cookies = parse_cookies(headers.get("Cookie", ""))
        route = {"/": self.page, "/join": self.join, "/joined": self.joined,
                 "/config.json": self.config, "/dev-token": self.token}.get(url.path)
        if route is not None:
            return await route(query, cookies)
        if url.path == "/presence.js":
            return static_file(self.settings["presence_js"])
        name = url.path.lstrip("/")
        if re.fullmatch(r"[a-z]+\.(js|css)", name):
            return static_file(os.path.join(STATIC, name))
        return text_answer(http.HTTPStatus.NOT_FOUND, "not found\n")

    async def page(self, query, cookies):
        return static_file(os.path.join(STATIC, "index.html"))

    async def config(self, query, cookies):
        uid = cookies.get("chat_uid")
        member = self.room.members.get(uid)
        body = {"presence": self.settings["presence_ws"],
                "you": {"uid": uid, "name": member["name"]} if member else None}
        return json_answer(body)

    async def join(self, query, cookies):
        """The app sends the user to presenced's consent page, as SPEC §4 has it."""
        name = query.get("name", "").strip()
        if not NAME_RE.match(name):
            return text_answer(http.HTTPStatus.BAD_REQUEST, "a name of 1 to 40 characters\n")
        back = self.settings["chat_url"] + "/joined"
        grant = (f"{self.settings['presence_url']}/grant/{self.settings['appid']}?" +
                 urllib.parse.urlencode({"redirect": back, "id": name}))
        return redirect(grant, cookie=f"chat_pending={urllib.parse.quote(name)}; Path=/; "
                                      "HttpOnly; SameSite=Lax; Max-Age=600")

    async def joined(self, query, cookies):
        """Back from the consent page: Presence-UID when the user allowed the app."""
        puid = query.get("Presence-UID", "")
        name = urllib.parse.unquote(cookies.get("chat_pending", ""))
        if not PUID_RE.match(puid) or not NAME_RE.match(name):
            return redirect("/?declined=1")
        self.room.join(puid, name)
        await self.app.snapshot()
        return redirect("/", cookie=f"chat_uid={puid}; Path=/; SameSite=Lax; Max-Age=2592000")

    async def token(self, query, cookies):
        email = query.get("email", "")
        made = await dev_token.make(self.settings["presenced"], self.settings["presenced_conf"],
                                    email)
        if made is None:
            return json_answer({"error": "no token for that address"},
                               http.HTTPStatus.BAD_REQUEST)
        return json_answer({"token": made})

    # ---- the pages' WebSocket: the room's members and presence out, rings in

    async def websocket(self, ws, path=None):
        uid = parse_cookies(ws.request_headers.get("Cookie", "")).get("chat_uid")
        if uid not in self.room.members:
            await ws.close(4401, "join first")
            return
        self.room.pages.add(ws)
        try:
            await ws.send(json.dumps({"type": "room", "you": uid,
                                      "members": self.room.listing()}))
            async for text in ws:
                await self.page_message(ws, uid, text)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.room.pages.discard(ws)

    async def page_message(self, ws, uid, text):
        try:
            m = json.loads(text)
        except ValueError:
            return
        target = m.get("ring") if isinstance(m, dict) else None
        if target not in self.room.members or target == uid:
            return
        reply = await self.app.ring(self.room.members[uid]["name"], target,
                                    self.settings["chat_url"] + "/")
        await ws.send(json.dumps({"type": "rang", "uid": target,
                                  "ok": reply.get("result") == "OK",
                                  "error": reply.get("error")}))


def parse_cookies(header):
    cookies = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            cookies[name] = value
    return cookies


def answer(status, kind, body, extra=()):
    headers = [("Content-Type", kind), ("Content-Length", str(len(body))),
               ("Cache-Control", "no-store"), ("X-Frame-Options", "DENY"), *extra]
    return status, headers, body


def text_answer(status, text):
    return answer(status, "text/plain; charset=utf-8", text.encode())


def json_answer(body, status=http.HTTPStatus.OK):
    return answer(status, "application/json", json.dumps(body).encode())


def redirect(location, cookie=None):
    extra = [("Location", location)] + ([("Set-Cookie", cookie)] if cookie else [])
    return answer(http.HTTPStatus.SEE_OTHER, "text/plain", b"", extra)


def static_file(path):
    with open(path, "rb") as f:
        body = f.read()
    return answer(http.HTTPStatus.OK, TYPES.get(os.path.splitext(path)[1], "text/plain"), body)


async def serve(settings, ready=None):
    """Runs the chat until cancelled. settings: appid, api_key, presence_url (presenced's
    public_url), chat_url, host, port, state, presenced and presenced_conf (for development
    tokens), presence_js (the path of clients/js/presence.js)."""
    presence_url = settings["presence_url"].rstrip("/")
    ws_base = "ws" + presence_url[len("http"):]
    settings = {**settings, "presence_url": presence_url, "presence_ws": ws_base + "/presence"}
    room = Room(settings["state"])
    app = AppService(room, f"{ws_base}/myapps/{settings['appid']}", settings["api_key"])
    chat = Chat(room, app, settings)
    async with websockets.serve(chat.websocket, settings["host"], settings["port"],
                                process_request=chat.http):
        if ready is not None:
            ready()
        await app.run()
