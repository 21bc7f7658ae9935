// browserid.js: Mozilla's own BrowserID libraries as a peer of the integration tests — keys,
// certificates and assertions made by browserid-crypto (jwcrypto, the signer of Persona and of
// early Firefox Accounts), and verdicts of browserid-local-verify on the same assertions.
//
// A long-running helper: one JSON request per line on stdin, one JSON answer per line on stdout
// ({"ok":true,...} or {"ok":false,"error":"..."}), in order. Keys stay in this process and are
// named by the id "keypair" answered.
//
//   {"op":"keypair","algorithm":"RS"|"DS","keysize":128|256|160,"bits":N}
//       -> {"key":"k1","public":{...},"modulus_bits":N}  (RS 128 = 1024 bits, 256 = 2048 bits)
//   {"op":"certify","issuer":"k1","iss":"idp.test","subject":"k2","email":"a@idp.test",
//    "exp":ms,"iat":ms,"claims":{...},"stripped":bool}  -> {"cert":"...","signature_bytes":N}
//   {"op":"assert","key":"k2","audience":"https://...","exp":ms,"iat":ms,"claims":{...},
//    "stripped":bool,"no_exp":bool}  -> {"assertion":"...","signature_bytes":N}
//   {"op":"verify","assertion":"...","audience":"...","hosts":{"idp.test":port},"ca":"ca.pem",
//    "trustedIssuers":[...],"maxDelegations":6,"now":ms}
//       -> {"status":"okay",...} or {"status":"failure","reason":"..."}
//
// "stripped": the signature must be one jwcrypto writes shorter than the modulus (its leading
// zero byte dropped, about one signature in 256). RSA PKCS#1 v1.5 is deterministic, so the
// helper moves exp (and iat) back one millisecond at a time until the signing input is one whose
// signature starts with 0x00 — found with Node's native RSA, which is fast — and then signs that
// input with jwcrypto itself, whose output is what the test sends.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const https = require('https');
const readline = require('readline');

const jwcrypto = require('browserid-crypto');
require('browserid-crypto/lib/algs/rs');
require('browserid-crypto/lib/algs/ds');
const Verifier = require('browserid-local-verify');

const keys = new Map();
let keyCount = 0;

function promise(fn) {
  return new Promise((resolve, reject) =>
    fn((err, value) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(value))));
}

function b64url(hex) {
  return Buffer.from(hex.length % 2 ? '0' + hex : hex, 'hex').toString('base64url');
}

// The same RSA key for Node's crypto, from jsbn's fields.
function nativeKey(rsa) {
  const jwk = {
    kty: 'RSA', n: b64url(rsa.n.toString(16)), e: b64url(rsa.e.toString(16)),
    d: b64url(rsa.d.toString(16)), p: b64url(rsa.p.toString(16)), q: b64url(rsa.q.toString(16)),
    dp: b64url(rsa.dmp1.toString(16)), dq: b64url(rsa.dmq1.toString(16)),
    qi: b64url(rsa.coeff.toString(16)),
  };
  return crypto.createPrivateKey({ key: jwk, format: 'jwk' });
}

// "bits" (RS only) asks for a modulus of exactly that size: jwcrypto's RSA generator sets only
// the top bit of each prime, so about four keys in ten have one bit less than their keysize says
// (a "1024-bit" key of 1023 bits), which Mozilla's verifier tolerates.
async function keypair(req) {
  let pair;
  for (let tries = 0; ; tries++) {
    if (tries === 50) throw new Error('no key of ' + req.bits + ' bits');
    pair = await promise((cb) =>
      jwcrypto.generateKeypair({ algorithm: req.algorithm, keysize: req.keysize }, cb));
    if (!req.bits || pair.secretKey.rsa.n.bitLength() === req.bits) break;
  }
  const id = 'k' + ++keyCount;
  const entry = { pair };
  let modulusBits = null;
  if (req.algorithm === 'RS') {
    entry.native = nativeKey(pair.secretKey.rsa);
    modulusBits = pair.secretKey.rsa.n.bitLength();
  }
  keys.set(id, entry);
  return { key: id, public: pair.publicKey.toSimpleObject(), modulus_bits: modulusBits };
}

function key(id) {
  const entry = keys.get(id);
  if (!entry) throw new Error('no key ' + id);
  return entry;
}

// A secret key that signs like `entry`'s but with Node's RSA, so that a search is cheap: jwcrypto
// hands it the exact signing input and it reports whether that one's signature starts with 0.
function probeKey(entry, found) {
  const probe = Object.create(entry.pair.secretKey);
  probe.sign = (message, rng, progress, done) => {
    const sig = crypto.sign('sha256', Buffer.from(message, 'binary'), entry.native);
    found.zero = sig[0] === 0;
    done(sig.toString('hex'));
  };
  return probe;
}

function signatureBytes(jws) {
  return Buffer.from(jws.split('.')[2], 'base64url').length;
}

// Signs with make(secretKey, shift) where shift moves the times back; with stripped, first finds
// the shift whose signature jwcrypto writes shorter than the modulus.
async function signed(entry, stripped, make) {
  let shift = 0;
  if (stripped) {
    if (!entry.native) throw new Error('stripped needs an RS key');
    const found = { zero: false };
    const probe = probeKey(entry, found);
    for (;; shift++) {
      if (shift > 100000) throw new Error('no signature with a leading zero found');
      await make(probe, shift);
      if (found.zero) break;
    }
  }
  const jws = await make(entry.pair.secretKey, shift);
  return { jws, bytes: signatureBytes(jws) };
}

async function certify(req) {
  const issuer = key(req.issuer);
  const subject = key(req.subject).pair.publicKey;
  const now = Date.now();
  const exp = req.exp || now + 3600 * 1000;
  const iat = req.iat || now - 1000;
  const certParams = { publicKey: subject };
  if (req.email) certParams.principal = { email: req.email };
  const made = await signed(issuer, req.stripped, (secret, shift) =>
    promise((cb) => jwcrypto.cert.sign(certParams,
      { issuer: req.iss, issuedAt: new Date(iat - shift), expiresAt: new Date(exp - shift) },
      req.claims || {}, secret, cb)));
  if (req.stripped && made.bytes >= (issuer.pair.secretKey.rsa.n.bitLength() + 7) >> 3)
    throw new Error('jwcrypto did not strip the signature');
  return { cert: made.jws, signature_bytes: made.bytes };
}

async function assertion(req) {
  const entry = key(req.key);
  const exp = req.exp || Date.now() + 120 * 1000;
  const made = await signed(entry, req.stripped, (secret, shift) => {
    const params = { audience: req.audience };
    if (!req.no_exp) params.expiresAt = new Date(exp - shift);
    if (req.iat) params.issuedAt = new Date(req.iat - shift);
    return promise((cb) => jwcrypto.assertion.sign(req.claims || {}, params, secret, cb));
  });
  return { assertion: made.jws, signature_bytes: made.bytes };
}

// browserid-local-verify fetching support documents from the test's HTTPS server: hosts maps a
// domain to the loopback port that answers for it, ca is the test run's CA.
function httpRequest(hosts, ca) {
  return (domain, path, done) => {
    const port = hosts[domain];
    if (!port) return done(null, 0, {}, '');
    const req = https.get({
      host: '127.0.0.1', port, path, servername: domain, ca, agent: false,
      headers: { host: domain },
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => done(null, res.statusCode, res.headers, body));
    });
    req.on('error', () => done(null, 0, {}, ''));
  };
}

async function verify(req) {
  const verifier = new Verifier({
    httpRequest: httpRequest(req.hosts || {}, req.ca ? fs.readFileSync(req.ca) : undefined),
    maxDelegations: req.maxDelegations || 6,
  });
  const args = { assertion: req.assertion, audience: req.audience };
  if (req.trustedIssuers) args.trustedIssuers = req.trustedIssuers;
  if (req.now) args.now = new Date(req.now);
  return new Promise((resolve) => verifier.verify(args, (err, details) => resolve(err
    ? { status: 'failure', reason: String(err.message || err) }
    : Object.assign({ status: 'okay' }, details))));
}

const ops = { keypair, certify, assert: assertion, verify };

async function answer(line) {
  try {
    const req = JSON.parse(line);
    if (!ops[req.op]) throw new Error('unknown op ' + req.op);
    return Object.assign({ ok: true }, await ops[req.op](req));
  } catch (e) {
    return { ok: false, error: String(e && e.stack || e) };
  }
}

// Answers strictly in order, one request at a time.
let queue = Promise.resolve();
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  queue = queue.then(() => answer(line)).then((reply) => {
    process.stdout.write(JSON.stringify(reply) + '\n');
  });
});
