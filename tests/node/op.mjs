// op: a real OpenID provider for the integration tests — panva's oidc-provider (OpenID Certified),
// over HTTPS with the test CA's certificate. Usage: node op.mjs CONFIG.json, where CONFIG holds
//   {"issuer":"https://op.test","port":N,"cert":PEM path,"key":PEM path,
//    "jwks":{"keys":[private JWKs; the first of each alg signs]},
//    "clients":[oidc-provider client metadata],
//    "resource":"https://presence.test","access_token_alg":"ES256"}
// Accounts: any login is an account whose e-mail is the login itself, verified unless it starts
// with "unverified". Prints "listening" when it serves, then one line per request ("GET /jwks").
import * as fs from 'node:fs';
import * as https from 'node:https';
import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));

function account(id) {
  return {
    accountId: id,
    async claims() {
      return { sub: id, email: id, email_verified: !id.startsWith('unverified') };
    },
  };
}

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: config.jwks,
  cookies: { keys: ['presenced test cookies'] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  scopes: ['openid', 'email'],
  // The ID token carries the e-mail the scope asked for, even beside an access token.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  findAccount: async (ctx, id) => account(id),
  features: {
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => ({
        scope: 'openid email',
        audience: resourceIndicator,
        accessTokenTTL: 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: config.access_token_alg || 'ES256' } },
      }),
    },
  },
  // RFC 9068 access tokens name their user by sub; presenced wants the verified e-mail too.
  async extraTokenClaims(ctx, token) {
    if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
    return { email: token.accountId, email_verified: !token.accountId.startsWith('unverified') };
  },
  ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
});
provider.on('server_error', (ctx, err) => process.stderr.write(`server_error ${err.stack}\n`));

const server = https.createServer({
  cert: fs.readFileSync(config.cert), key: fs.readFileSync(config.key),
}, (req, res) => {
  process.stdout.write(`${req.method} ${req.url.split('?')[0]}\n`);
  provider.callback()(req, res);
});
server.listen(config.port, '127.0.0.1', () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
