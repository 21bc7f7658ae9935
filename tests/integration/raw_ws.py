"""A WebSocket client on a bare socket, for what client libraries will not do: frames with a
chosen header (a length announced and never sent, no mask, bytes that are not UTF-8), and a
client that stops reading (a small receive buffer it never empties)."""
import base64
import json
import os
import socket
import struct

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def frame_header(opcode, length, fin=True, mask_key=b"\x11\x22\x33\x44"):
    """The header of a client frame announcing length bytes; mask_key None: unmasked."""
    first = (0x80 if fin else 0) | opcode
    masked = 0x80 if mask_key is not None else 0
    if length < 126:
        head = struct.pack("!BB", first, masked | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, masked | 126, length)
    else:
        head = struct.pack("!BBQ", first, masked | 127, length)
    return head + (mask_key or b"")


def frame(opcode, payload, fin=True, mask_key=b"\x11\x22\x33\x44"):
    if isinstance(payload, str):
        payload = payload.encode()
    body = payload
    if mask_key is not None:
        body = bytes(b ^ mask_key[i % 4] for i, b in enumerate(payload))
    return frame_header(opcode, len(payload), fin, mask_key) + body


class RawWebSocket:
    def __init__(self, port, path="/presence", rcvbuf=None, timeout=10, tls=None, early=b""):
        """tls: an ssl.SSLContext for wss; early: bytes sent with the handshake, before its
        answer (RFC 6455 §4.1 forbids it)."""
        self.sock = socket.socket()
        if rcvbuf is not None:
            # Before connect(), so that the window the server sees is small from the start.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname="127.0.0.1")
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n\r\n").encode() + early)
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed during the handshake: {response!r}")
            response += chunk
        head, _, self.pending = response.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {head!r}")
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def send_text(self, text):
        self.send(frame(OP_TEXT, text))

    def _fill(self, need):
        while len(self.pending) < need:
            chunk = self.sock.recv(65536)
            if not chunk:
                self.eof = True
                return False
            self.pending += chunk
        return True

    def recv_frame(self):
        """(opcode, payload) of the next frame, or None at the end of the stream (a frame
        the stream ends inside of is not returned)."""
        if not self._fill(2):
            return None
        first, second = self.pending[0], self.pending[1]
        length, offset = second & 0x7F, 2
        if length == 126:
            if not self._fill(4):
                return None
            length, offset = struct.unpack("!H", self.pending[2:4])[0], 4
        elif length == 127:
            if not self._fill(10):
                return None
            length, offset = struct.unpack("!Q", self.pending[2:10])[0], 10
        if not self._fill(offset + length):
            return None
        payload = self.pending[offset:offset + length]
        self.pending = self.pending[offset + length:]
        return first & 0x0F, payload

    def recv_json(self):
        """The next text message as JSON (pings are answered on the way)."""
        while True:
            got = self.recv_frame()
            if got is None:
                raise ConnectionError("closed")
            opcode, payload = got
            if opcode == OP_PING:
                self.send(frame(OP_PONG, payload))
                continue
            if opcode != OP_TEXT:
                raise AssertionError(f"frame {opcode} where a text message was expected")
            return json.loads(payload)

    def frames_until_close(self):
        """Every frame up to the end of the stream: (texts as JSON, close code or None). The
        server's close is answered, as RFC 6455 §5.5.1 has a client do."""
        texts, code = [], None
        while True:
            got = self.recv_frame()
            if got is None:
                return texts, code
            opcode, payload = got
            if opcode == OP_TEXT:
                texts.append(json.loads(payload))
            elif opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                try:
                    self.send(frame(OP_CLOSE, payload[:2]))
                except OSError:
                    pass  # gone already

    def close(self):
        self.sock.close()
