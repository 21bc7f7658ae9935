// presence.js: the device side of Mozilla Presence for browsers — one WebSocket to presenced
// (presence(7), "DEVICE PRESENCE CHANNEL"), its status, live notifications as events, keep-alive,
// and reconnection with exponential back-off and jitter. A dependency-free ES module; see
// README.md beside it.

const STATUSES = ["offline", "unavailable", "online"];

// errno (SPEC §1) after which trying again cannot help: superseded by a newer connection of this
// device (52), an e-mail that does not match the credential (31), a bad API key (42), a message
// the server cannot take (10 to 14: this client's fault).
const FATAL = new Set([10, 11, 12, 13, 14, 31, 42, 52]);
// errno of a credential that was refused: fatal unless a credential() function can make another.
const CREDENTIAL = new Set([30, 32, 33, 34]);
// Close codes after which reconnecting would repeat the same refusal (4001: superseded; protocol
// errors that are this client's). 1008 is not among them: presenced also closes a slow consumer
// with 1008, and an errno sent before says when it is final.
const FINAL_CLOSES = new Set([4001, 1002, 1003, 1007, 1009]);

const DEFAULTS = {
  device: undefined,        // opaque, ≤ 64 bytes; the server's default is "default"
  status: "online",
  followVisibility: false,  // true: "unavailable" while the page is hidden
  keepAlive: 25000,         // ms of silence before a {} ping; 0: none
  keepAliveTimeout: 10000,  // ms the answer to that ping may take
  connectTimeout: 15000,    // ms from opening the socket to the server's first answer
  initialDelay: 1000,       // first reconnection delay, ms
  maxDelay: 60000,          // the longest, ms
  factor: 2,                // growth per failed attempt
  goingAwayDelay: 5000,     // after errno 61 (server going away): wait this to twice this, ms
  WebSocket: undefined,     // another WebSocket class (tests, other runtimes)
};

export class PresenceError extends Error {
  constructor(errno, message, retryAfter) {
    super(message || `errno ${errno}`);
    this.name = "PresenceError";
    this.errno = errno;
    if (retryAfter !== undefined) this.retryAfter = retryAfter;
  }
}

// A device's connection. Events (CustomEvent, the data in `detail`): "statechange" {state,
// previous}, "online" {reconnected}, "status" {status} (the server took it), "notification"
// (one per notification: source, message, action, app, id, ts), "error" {errno, error,
// retryAfter}, "disconnected" {code, errno, reason, reconnectIn}, "stopped" {errno, code,
// reason}.
export class PresenceClient extends EventTarget {
  constructor(options) {
    super();
    const o = { ...DEFAULTS, ...options };
    if (!o.url || !o.email) throw new TypeError("PresenceClient needs url and email");
    if (!o.token && !o.assertion && typeof o.credential !== "function")
      throw new TypeError("PresenceClient needs a token, an assertion or credential()");
    checkStatus(o.status);
    this.options = o;
    this._desired = o.status;
    this._state = "idle";
    this._socket = null;
    this._pending = [];       // what each expected reply answers: "bind" | "status" | "ping"
    this._acked = null;       // the status the server holds for this connection
    this._inflight = null;    // the status of the update awaiting its reply
    this._waiters = [];       // status() promises
    this._attempt = 0;        // consecutive connections that did not reach "online"
    this._retryAfterMs = 0;   // errno 50's retry_after, honoured by the next wait
    this._timers = {};
    this._seen = new Set();   // notification ids already delivered (duplicates are dropped)
    this._reconnected = false;
    this._visibility = () => this._statusChanged();
    if (o.followVisibility && typeof document !== "undefined")
      document.addEventListener("visibilitychange", this._visibility);
  }

  get state() { return this._state; }
  // The status the page asked for, and the one sent (unavailable while hidden, if followed).
  get desiredStatus() { return this._desired; }
  get effectiveStatus() { return this._effective(); }

  connect() {
    if (this._state !== "idle" && this._state !== "stopped") return this;
    this._attempt = 0;
    this._reconnected = false;
    this._open();
    return this;
  }

  // Sets the device's status; resolves once the server has it, rejects when the client stops
  // first or the server refuses it.
  status(value) {
    checkStatus(value);
    this._desired = value;
    const promise = new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
    this._statusChanged();
    return promise;
  }

  // Closes the connection for good (until connect() again).
  close() {
    this._stop({ reason: "closed by the page" }, new Error("closed"));
    if (this.options.followVisibility && typeof document !== "undefined")
      document.removeEventListener("visibilitychange", this._visibility);
  }

  // ---- the connection

  _open() {
    const Socket = this.options.WebSocket || globalThis.WebSocket;
    this._setState("connecting");
    this._pending = [];
    this._acked = this._inflight = null;
    let socket;
    try {
      socket = new Socket(this.options.url);
    } catch (e) {
      this._lost({ code: 0, reason: String(e) });
      return;
    }
    this._socket = socket;
    socket.onopen = () => this._bind();
    socket.onmessage = (event) => this._received(event.data);
    socket.onclose = (event) => this._closed(event);
    socket.onerror = () => {};  // a close event follows
    this._timer("connect", this.options.connectTimeout,
      () => this._lost({ code: 0, reason: "connect timeout" }));
  }

  async _bind() {
    let credential;
    try {
      credential = await this._credential();
    } catch (e) {
      this._lost({ code: 0, reason: `no credential: ${e.message || e}` });
      return;
    }
    if (this._state !== "connecting" || !this._socket) return;
    this._inflight = this._effective();
    this._send({ ...this._message(this._inflight), ...credential }, "bind");
  }

  async _credential() {
    const o = this.options;
    const got = typeof o.credential === "function" ? await o.credential() : o;
    if (got && got.token) return { token: got.token };
    if (got && got.assertion) return { assertion: got.assertion };
    throw new Error("credential() gave neither token nor assertion");
  }

  _message(status) {
    const m = { email: this.options.email, status };
    if (this.options.device !== undefined) m.device = this.options.device;
    return m;
  }

  _send(message, kind) {
    try {
      this._socket.send(JSON.stringify(message));
      this._pending.push(kind);
    } catch (e) {
      this._lost({ code: 0, reason: `send failed: ${e.message || e}` });
    }
  }

  _received(text) {
    this._clear("connect");  // the server answers: verifying may take a while
    this._heard();
    let m;
    try {
      m = JSON.parse(text);
    } catch {
      return;
    }
    if (m === null || typeof m !== "object") return;
    if (Array.isArray(m.notifications)) this._notifications(m.notifications);
    else if (m.result === "OK") this._ok(this._pending.shift());
    else if (m.result === "KO") this._refused(m);
    else if (Object.keys(m).length === 0) this._pending.shift();  // the answer to a ping
  }

  _notifications(list) {
    for (const n of list) {
      if (!n || typeof n !== "object") continue;
      if (n.id !== undefined) {
        if (this._seen.has(n.id)) continue;
        this._seen.add(n.id);
        if (this._seen.size > 500) this._seen.delete(this._seen.values().next().value);
      }
      this._emit("notification", n);
    }
  }

  _ok(kind) {
    const status = this._inflight;
    this._inflight = null;
    this._acked = status;
    if (kind === "bind") {
      this._attempt = 0;
      this._retryAfterMs = 0;
      this._setState("online");
      this._emit("online", { reconnected: this._reconnected });
      this._reconnected = true;
      this._keepAlive();
    }
    this._emit("status", { status });
    if (status === this._effective()) this._settle(null);
    this._statusChanged();
  }

  _refused(m) {
    const { errno } = m;
    const detail = { errno, error: m.error };
    if (m.retry_after !== undefined) detail.retryAfter = m.retry_after;
    this._emit("error", detail);
    // 52 and 61 come unasked: the server is closing this connection.
    if (errno === 61) {
      this._lost({ code: 1001, errno, reason: m.error });
      return;
    }
    const kind = errno === 52 ? undefined : this._pending.shift();
    const failed = this._inflight;
    this._inflight = null;
    if (FATAL.has(errno) || (kind === "bind" && CREDENTIAL.has(errno) &&
                             typeof this.options.credential !== "function")) {
      this._stop({ errno, reason: m.error }, new PresenceError(errno, m.error));
    } else if (errno === 50) {
      this._retryAfterMs = Math.max(1, m.retry_after || 1) * 1000;
      this._timer("retry", this._retryAfterMs, () => this._retry(kind));
    } else if (kind === "bind") {
      // 35 (verifier unavailable), 51 (too many devices), 60, a refused credential that
      // credential() may renew: another connection, later.
      this._lost({ code: 0, errno, reason: m.error });
    } else if (kind === "status" && failed !== null) {
      // 60 (internal error): the same status again, later.
      this._timer("retry", this._delay(), () => this._statusChanged());
    }
  }

  // After errno 50: the binding again, or the latest status.
  _retry(kind) {
    this._retryAfterMs = 0;
    if (kind === "bind" && this._state === "connecting") this._bind();
    else this._statusChanged();
  }

  // Sends the effective status when the server does not hold it and nothing is on the way.
  _statusChanged() {
    if (this._state !== "online" || this._inflight !== null || this._timers.retry) return;
    const status = this._effective();
    if (status === this._acked) {
      this._settle(null);
      return;
    }
    this._inflight = status;
    this._send(this._message(status), "status");
  }

  _effective() {
    const hidden = this.options.followVisibility && typeof document !== "undefined" &&
      document.visibilityState === "hidden";
    return hidden && this._desired === "online" ? "unavailable" : this._desired;
  }

  _settle(error) {
    const waiters = this._waiters;
    this._waiters = [];
    for (const w of waiters) (error ? w.reject(error) : w.resolve(this._acked));
  }

  // ---- keep-alive: a {} after keepAlive ms of silence, answered within keepAliveTimeout

  _keepAlive() {
    const { keepAlive, keepAliveTimeout } = this.options;
    if (!keepAlive || this._state !== "online") return;
    this._timer("quiet", keepAlive, () => {
      this._send({}, "ping");
      this._timer("deaf", keepAliveTimeout,
        () => this._lost({ code: 0, reason: "keep-alive timeout" }));
    });
  }

  _heard() {
    this._clear("deaf");
    this._keepAlive();
  }

  // ---- losing a connection, waiting, stopping

  _closed(event) {
    if (FINAL_CLOSES.has(event.code)) {
      this._stop({ code: event.code, errno: event.code === 4001 ? 52 : undefined,
                   reason: event.reason || "closed by the server" },
                 new PresenceError(event.code === 4001 ? 52 : 0, "closed"));
      return;
    }
    this._lost({ code: event.code, reason: event.reason || "closed" });
  }

  // The connection is gone or given up: wait, then open another.
  _lost({ code, errno, reason }) {
    if (this._state === "stopped" || this._state === "waiting") return;
    this._abandon();
    if (this._state !== "online") this._attempt++;
    const reconnectIn = errno === 61 ? this._goingAwayDelay() : this._delay();
    this._setState("waiting");
    this._emit("disconnected", { code, errno, reason, reconnectIn });
    this._timer("reconnect", reconnectIn, () => this._open());
  }

  _stop({ code, errno, reason }, error) {
    if (this._state === "stopped") return;
    this._abandon();
    for (const name of Object.keys(this._timers)) this._clear(name);
    this._setState("stopped");
    this._settle(error);
    this._emit("stopped", { code, errno, reason });
  }

  // Drops the socket at once: a dead peer's close handshake can take minutes.
  _abandon() {
    for (const name of ["connect", "quiet", "deaf", "retry"]) this._clear(name);
    const socket = this._socket;
    this._socket = null;
    this._pending = [];
    this._inflight = null;
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    try {
      socket.close(1000);
    } catch {
      // already closing
    }
  }

  // Exponential back-off with equal jitter (half fixed, half random), at least retry_after.
  _delay() {
    const { initialDelay, maxDelay, factor } = this.options;
    const exp = Math.min(maxDelay, initialDelay * Math.pow(factor, Math.max(0, this._attempt - 1)));
    const delay = exp / 2 + Math.random() * exp / 2;
    return Math.round(Math.max(delay, this._retryAfterMs));
  }

  // A server going away (errno 61) sends all its devices off at once: spread them out.
  _goingAwayDelay() {
    const base = Math.max(this.options.goingAwayDelay, this._delay());
    return Math.round(base + Math.random() * base);
  }

  // ---- small things

  _setState(state) {
    if (state === this._state) return;
    const previous = this._state;
    this._state = state;
    this._emit("statechange", { state, previous });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _timer(name, ms, fn) {
    this._clear(name);
    this._timers[name] = setTimeout(() => {
      delete this._timers[name];
      fn();
    }, ms);
  }

  _clear(name) {
    if (this._timers[name] !== undefined) clearTimeout(this._timers[name]);
    delete this._timers[name];
  }
}

function checkStatus(value) {
  if (!STATUSES.includes(value))
    throw new TypeError(`status must be one of ${STATUSES.join(", ")}`);
}
