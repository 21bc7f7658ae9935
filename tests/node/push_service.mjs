// push_service: a stand-in Web Push service (RFC 8030) for the integration tests, over HTTPS with
// the test CA's certificate. Each message it is sent is decrypted with Mozilla's reference
// implementation of RFC 8188/8291 (http_ece) with the subscription's private key, and its VAPID
// token (RFC 8292) verified with jose against the key the Authorization header names.
// Usage: node push_service.mjs CONFIG.json, where CONFIG holds
//   {"host":"push.test","port":N,"control_port":M,"cert":PEM path,"key":PEM path}
// The tests drive it on the plain-HTTP control port (loopback):
//   POST /subscriptions                 -> {"id","subscription":{"endpoint","keys":{"p256dh","auth"}}}
//   POST /subscriptions/ID/answers      [{"status":429,"retry_after":"2"},{"status":413,"if":"payload"}...]
//       the answers to give next, in order (then 201); "if":"payload" applies to a body only
//   GET  /subscriptions/ID/messages     every message received, decrypted and checked
// Prints "listening" once both servers serve.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import ece from 'http_ece';
import * as jose from 'jose';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const subscriptions = new Map();

function subscriptionMake() {
  const id = crypto.randomBytes(9).toString('base64url');
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.generateKeys();
  const auth = crypto.randomBytes(16);
  const sub = { id, ecdh, auth, answers: [], messages: [] };
  subscriptions.set(id, sub);
  return {
    id,
    subscription: {
      endpoint: `https://${config.host}/push/${id}`,
      keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: auth.toString('base64url') },
    },
  };
}

// RFC 8292 §3: "vapid t=<JWT>, k=<the P-256 public key, base64url>".
async function vapidCheck(authorization) {
  const match = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(authorization || '');
  if (!match) return { ok: false, error: `not a vapid Authorization: ${authorization}` };
  const [, token, k] = match;
  const point = Buffer.from(k, 'base64url');
  if (point.length !== 65 || point[0] !== 4) return { ok: false, error: 'k is not a P-256 point' };
  try {
    const key = await jose.importJWK({
      kty: 'EC', crv: 'P-256',
      x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url'),
    }, 'ES256');
    const { payload, protectedHeader } = await jose.jwtVerify(token, key, {
      algorithms: ['ES256'], audience: `https://${config.host}`,
    });
    const now = Math.floor(Date.now() / 1000);
    if (typeof payload.exp !== 'number' || payload.exp > now + 24 * 3600)
      return { ok: false, error: 'exp missing or more than 24 hours ahead' };
    if (typeof payload.sub !== 'string' || !/^(mailto:|https:)/.test(payload.sub))
      return { ok: false, error: 'sub is not a mailto: or https: URI' };
    return { ok: true, k, aud: payload.aud, sub: payload.sub, exp: payload.exp, typ: protectedHeader.typ };
  } catch (err) {
    return { ok: false, error: String(err) };
  }
}

function decrypt(sub, body, encoding) {
  if (body.length === 0) return { plaintext: null };
  if (encoding !== 'aes128gcm') return { error: `Content-Encoding ${encoding}` };
  try {
    const plain = ece.decrypt(body, { version: 'aes128gcm', privateKey: sub.ecdh, authSecret: sub.auth });
    return { plaintext: plain.toString('utf8') };
  } catch (err) {
    return { error: String(err) };
  }
}

function nextAnswer(sub, body) {
  while (sub.answers.length > 0) {
    const answer = sub.answers.shift();
    if (answer.if === 'payload' && body.length === 0) continue;
    return answer;
  }
  return { status: 201 };
}

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

const server = https.createServer({
  cert: fs.readFileSync(config.cert), key: fs.readFileSync(config.key),
}, async (req, res) => {
  const body = await readBody(req);
  const match = /^\/push\/([A-Za-z0-9_-]+)$/.exec(req.url);
  const sub = match && subscriptions.get(match[1]);
  if (req.method !== 'POST' || !sub) {
    res.writeHead(404).end();
    return;
  }
  const message = {
    at_ms: Date.now(),
    host: req.headers.host,
    ttl: req.headers.ttl, urgency: req.headers.urgency, topic: req.headers.topic,
    content_encoding: req.headers['content-encoding'] || null,
    content_type: req.headers['content-type'] || null,
    length: body.length,
    vapid: await vapidCheck(req.headers.authorization),
    ...decrypt(sub, body, req.headers['content-encoding']),
  };
  const answer = nextAnswer(sub, body);
  message.answered = answer.status;
  sub.messages.push(message);
  const headers = {};
  if (answer.retry_after !== undefined) headers['Retry-After'] = String(answer.retry_after);
  if (answer.status === 201) headers.Location = `https://${config.host}/message/${crypto.randomUUID()}`;
  res.writeHead(answer.status, headers).end();
});

const control = http.createServer(async (req, res) => {
  const body = await readBody(req);
  const reply = (status, value) => {
    res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(value));
  };
  if (req.method === 'POST' && req.url === '/subscriptions') return reply(200, subscriptionMake());
  const match = /^\/subscriptions\/([A-Za-z0-9_-]+)\/(answers|messages)$/.exec(req.url);
  const sub = match && subscriptions.get(match[1]);
  if (!sub) return reply(404, { error: 'no such subscription' });
  if (match[2] === 'answers' && req.method === 'POST') {
    sub.answers.push(...JSON.parse(body.toString('utf8')));
    return reply(200, { queued: sub.answers.length });
  }
  if (match[2] === 'messages' && req.method === 'GET') return reply(200, sub.messages);
  return reply(405, { error: 'method not allowed' });
});

server.listen(config.port, '127.0.0.1', () => {
  control.listen(config.control_port, '127.0.0.1', () => process.stdout.write('listening\n'));
});
