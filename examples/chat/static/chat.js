// chat.js: the chat room's page — joining, the room's members and their presence (from the chat
// server, by PUID), ringing, and this tab as the user's device (presence.js with a development
// token, "unavailable" while the tab is hidden).
import { PresenceClient } from "/presence.js";

const $ = (id) => document.getElementById(id);
const contacts = new Map();  // uid -> {name, status}
let me = null;
let room = null;

async function start() {
  const config = await (await fetch("/config.json")).json();
  const email = localStorage.getItem("chat-email");
  if (!config.you || !email) {
    showJoin();
    return;
  }
  me = config.you;
  $("room").hidden = false;
  $("my-name").textContent = me.name;
  openRoom();
  openDevice(config.presence, email);
}

function showJoin() {
  $("join").hidden = false;
  $("declined").hidden = !new URLSearchParams(location.search).has("declined");
  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem("chat-email", $("email").value.trim());
    location.href = "/join?" + new URLSearchParams({ name: $("name").value.trim() });
  });
}

// The chat server's WebSocket: members, their presence, and the answers to rings.
function openRoom() {
  room = new WebSocket(`ws://${location.host}/room`);
  room.onmessage = (event) => {
    const m = JSON.parse(event.data);
    if (m.type === "room") m.members.forEach((member) => contacts.set(member.uid, member));
    else if (m.type === "member") contacts.set(m.uid, { uid: m.uid, name: m.name, status: m.status });
    else if (m.type === "presence" && contacts.has(m.uid)) contacts.get(m.uid).status = m.status;
    else if (m.type === "rang") rang(m);
    render();
  };
  room.onclose = () => setTimeout(openRoom, 1000);
}

function render() {
  const list = $("contacts");
  list.replaceChildren();
  for (const c of contacts.values()) {
    if (c.uid === me.uid) continue;
    const li = document.createElement("li");
    li.dataset.uid = c.uid;
    li.dataset.name = c.name;
    const name = Object.assign(document.createElement("span"), { className: "name", textContent: c.name });
    const status = Object.assign(document.createElement("span"),
      { className: `status ${c.status}`, textContent: c.status });
    const ring = Object.assign(document.createElement("button"),
      { className: "ring-button", type: "button", textContent: c.rang || "Ring" });
    ring.addEventListener("click", () => room.send(JSON.stringify({ ring: c.uid })));
    li.append(name, status, ring);
    list.append(li);
  }
}

function rang(m) {
  const c = contacts.get(m.uid);
  if (!c) return;
  c.rang = m.ok ? "Rung" : "Ring again (not sent)";
  setTimeout(() => { delete c.rang; render(); }, 5000);
}

// This tab is the user's device: a token for the e-mail, presence.js, rings as notifications.
function openDevice(url, email) {
  let device = sessionStorage.getItem("chat-device");
  if (!device) {
    device = "chat-" + Math.random().toString(36).slice(2, 10);
    sessionStorage.setItem("chat-device", device);
  }
  const presence = new PresenceClient({
    url, email, device, followVisibility: true,
    credential: async () => {
      const answer = await (await fetch("/dev-token?" + new URLSearchParams({ email }))).json();
      if (!answer.token) throw new Error(answer.error || "no token");
      return { token: answer.token };
    },
  });
  const shown = $("my-status");
  const show = (text) => { shown.textContent = text; shown.className = `status ${text}`; };
  presence.addEventListener("status", (e) => show(e.detail.status));
  presence.addEventListener("disconnected", () => show("reconnecting"));
  presence.addEventListener("stopped", (e) => show(e.detail.errno === 52 ? "taken over" : "stopped"));
  presence.addEventListener("notification", (e) => {
    $("ring-text").textContent = e.detail.message;
    $("ring").hidden = false;
  });
  $("ring-dismiss").addEventListener("click", () => { $("ring").hidden = true; });
  presence.connect();
  window.presence = presence;  // for the curious, in the console
}

start();
