// A real OAuth 2.0 / OIDC server for the introspection tests (tests/oauth2_oidc_provider.rs).
// It is panva/node-oidc-provider with RFC 7662 introspection and RFC 7009 revocation on, and
// the client_credentials grant so a test can mint opaque access tokens without a browser.
//
// Environment:
//   PORT       the 127.0.0.1 port to listen on (required; the test picks a free one)
//   TTL        lifetime in seconds of tokens for the `exporter` and `other` clients (3600)
//   SHORT_TTL  lifetime in seconds of tokens for the `short-lived` client (2)
//   ROTATING_TTL  lifetime in seconds of access tokens for the `rotating` client (60)
//   EXIT_WITH_STDIN=1  exit when stdin closes: a test process that dies, or never drops the
//              server (a shared instance in a static), still takes the server with it
//
// Clients (all client_secret_basic or client_secret_post, scope api:read):
//   exporter / exporter-secret        the exporter's own client; also mints test tokens
//   short-lived / short-lived-secret  mints tokens that expire after SHORT_TTL
//   other / other-secret              a second client, for tokens the exporter did not mint
//   special / "s:e+c r%e/t&"          a secret that only survives correct RFC 6749 encoding
//   rotating / rotating-secret        authorization code and refresh_token grants, with refresh-token
//                                     rotation always on: a rotated refresh token used
//                                     again revokes the whole grant (RFC 9700 reuse detection)
//
// Test-only route: POST /test/refresh-token issues a refresh token for `rotating` (account
// `user-1`, scope `openid offline_access`) as a completed authorization-code flow would,
// since a browser flow has no place in a test.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('PORT must be set to the port to listen on');
  process.exit(2);
}
const ttl = Number(process.env.TTL ?? 3600);
const shortTtl = Number(process.env.SHORT_TTL ?? 2);
const rotatingTtl = Number(process.env.ROTATING_TTL ?? 60);

const client = (id, secret = `${id}-secret`) => ({
  client_id: id,
  client_secret: secret,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  scope: 'api:read',
});

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    client('exporter'),
    client('short-lived'),
    client('other'),
    client('special', 's:e+c r%e/t&'),
    {
      client_id: 'rotating',
      client_secret: 'rotating-secret',
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: ['http://127.0.0.1/callback'],
      response_types: ['code'],
      scope: 'openid offline_access',
    },
  ],
  rotateRefreshToken: true,
  // offline_access also enables the refresh_token grant.
  scopes: ['api:read', 'openid', 'offline_access'],
  ttl: {
    ClientCredentials: (ctx, token, c) => (c.clientId === 'short-lived' ? shortTtl : ttl),
    AccessToken: (ctx, token, c) => (c.clientId === 'rotating' ? rotatingTtl : ttl),
    RefreshToken: 86400,
    Grant: 86400,
    IdToken: 3600,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // Any confidential client may introspect any token (the library default, stated here
    // so the library does not warn about it); only the issuing client may revoke one.
    introspection: {
      enabled: true,
      allowedPolicy: async (ctx, caller, token) =>
        caller.clientAuthMethod !== 'none' || token.clientId === caller.clientId,
    },
    revocation: {
      enabled: true,
      allowedPolicy: async (ctx, caller, token) => token.clientId === caller.clientId,
    },
  },
});

provider.use(async (ctx, next) => {
  if (ctx.method !== 'POST' || ctx.path !== '/test/refresh-token') {
    await next();
    return;
  }
  const client = await provider.Client.find('rotating');
  const grant = new provider.Grant({ accountId: 'user-1', clientId: 'rotating' });
  grant.addOIDCScope('openid offline_access');
  const grantId = await grant.save();
  const token = new provider.RefreshToken({
    accountId: 'user-1',
    client,
    grantId,
    gty: 'authorization_code',
    scope: 'openid offline_access',
  });
  ctx.body = { refresh_token: await token.save() };
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));
const server = provider.listen(port, '127.0.0.1');
server.on('listening', () => console.log(`oidc-provider listening on 127.0.0.1:${port}`));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (process.env.EXIT_WITH_STDIN === '1') {
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
}
