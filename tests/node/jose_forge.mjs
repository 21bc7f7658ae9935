// jose_forge: signs the tokens the integration tests need — good ones, and what a real provider
// would never issue (alg none, HS256 keyed with a public key, crit, wrong claims) — with panva's
// jose, the reference JOSE library. One JSON request per line on stdin, one JSON answer per line
// on stdout:
//   {"op":"key","alg":"RS256"|"PS256"|"ES256"|"ES384"|"EdDSA","kid":"k1"}
//       → {"private":JWK,"public":JWK}
//   {"op":"sign","key":private JWK,"alg":"RS256","header":{...},"payload":{...}}
//       → {"token":"h.p.s"}  (header members beside alg; "crit" is allowed through)
//   {"op":"unsecured","payload":{...}} → {"token":"h.p."}      (alg none)
//   {"op":"hmac","secret":"text","alg":"HS256","header":{...},"payload":{...}} → {"token":...}
import * as readline from 'node:readline';
import * as jose from 'jose';

async function answer(req) {
  switch (req.op) {
    case 'key': {
      const opts = req.alg === 'EdDSA' ? { crv: 'Ed25519', extractable: true } : { extractable: true };
      const { publicKey, privateKey } = await jose.generateKeyPair(req.alg, opts);
      const pub = { ...(await jose.exportJWK(publicKey)), kid: req.kid };
      const priv = { ...(await jose.exportJWK(privateKey)), kid: req.kid };
      return { private: priv, public: pub };
    }
    case 'sign': {
      const key = await jose.importJWK(req.key, req.alg);
      const header = { ...(req.header || {}), alg: req.alg };
      const crit = Object.fromEntries((header.crit || []).map((name) => [name, true]));
      const jws = new jose.CompactSign(new TextEncoder().encode(JSON.stringify(req.payload)));
      return { token: await jws.setProtectedHeader(header).sign(key, { crit }) };
    }
    case 'unsecured':
      return { token: new jose.UnsecuredJWT(req.payload).encode() };
    case 'hmac': {
      const header = { ...(req.header || {}), alg: req.alg };
      const jws = new jose.CompactSign(new TextEncoder().encode(JSON.stringify(req.payload)));
      return { token: await jws.setProtectedHeader(header).sign(new TextEncoder().encode(req.secret)) };
    }
    default:
      throw new Error(`unknown op ${req.op}`);
  }
}

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  let reply;
  try {
    reply = await answer(JSON.parse(line));
  } catch (e) {
    reply = { error: String(e && e.message ? e.message : e) };
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
}
