// Test-only OpenID provider configured like Make's (www.make.com) OAuth 2.0 / OIDC server,
// built on panva's oidc-provider, plus a tiny Make-like API (GET /api/v2/users/me).
//
// Start:  PORT=0 node server.js
// stdout: line 1 "PORT=<port>" once the server is ready, line 2 "INFO=<json>" (users, client
//         ids, short TTL; no secrets). If a client secret is not given through the environment,
//         a random one is generated and printed once on a "SECRETS=<json>" line.
// Env:    PORT (0 = any free port), SHORT_TTL (seconds, default 4),
//         CONFIDENTIAL_CLIENT_SECRET, SHORT_CONFIDENTIAL_CLIENT_SECRET, RESOURCE_SERVER_SECRET,
//         REDIRECT_URIS (more http://127.0.0.1:PORT/... redirect URIs to register, comma-
//         separated), EXIT_WITH_STDIN=1 (exit when stdin closes, so a killed test runner leaves no server),
//         USERINFO_ACCEPTS_ID_TOKEN=0 (refuse ID tokens as userinfo bearer; default: accept, as
//         Make's docs use them).
// Never use outside tests: in-memory storage, demo users, no passwords.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const HOST = '127.0.0.1';
const SHORT_TTL = Number.parseInt(process.env.SHORT_TTL || '4', 10);
const LONG_TTL = 3600;
const USERINFO_ACCEPTS_ID_TOKEN = process.env.USERINFO_ACCEPTS_ID_TOKEN !== '0';

if (!Number.isInteger(SHORT_TTL) || SHORT_TTL <= 0) {
  throw new Error('SHORT_TTL must be a positive integer');
}

// The package's default redirect URI, a non-loopback one, and those a test run chose
// (free ports, so two runs on one machine never share a listening port).
const EXTRA_REDIRECT_URIS = (process.env.REDIRECT_URIS || '').split(/[\s,]+/).filter(Boolean);
for (const uri of EXTRA_REDIRECT_URIS) {
  if (!/^http:\/\/127\.0\.0\.1:[0-9]+\/[^\s]*$/.test(uri)) {
    throw new Error(`REDIRECT_URIS: not a loopback redirect URI: ${uri}`);
  }
}
const REDIRECT_URIS = [...new Set([
  'http://127.0.0.1:8765/callback',
  'https://app.example.test/callback',
  ...EXTRA_REDIRECT_URIS,
])];

// Make's API scopes (plus openid) -- listed so that they reach the (opaque) access token.
const API_SCOPES = [
  'user:read', 'user:write', 'organizations:read', 'teams:read', 'scenarios:read',
  'scenarios:write', 'scenarios:run', 'connections:read', 'datastores:read', 'hooks:read',
  'dlqs:read', 'templates:read',
];

const USERS = {
  alice: {
    id: 1, sub: 'alice', name: 'Alice Analyst', email: 'alice@example.com', email_verified: true,
  },
  bob: {
    id: 2, sub: 'bob', name: 'Bob Builder', email: 'bob@example.com', email_verified: true,
  },
};

const secretsPrinted = {};
function secretFromEnv(name) {
  const value = process.env[name];
  if (value) return value;
  const generated = crypto.randomBytes(32).toString('base64url');
  secretsPrinted[name] = generated;
  return generated;
}

const SECRETS = {
  confidential: secretFromEnv('CONFIDENTIAL_CLIENT_SECRET'),
  shortConfidential: secretFromEnv('SHORT_CONFIDENTIAL_CLIENT_SECRET'),
  resourceServer: secretFromEnv('RESOURCE_SERVER_SECRET'),
};

const clientBase = {
  redirect_uris: REDIRECT_URIS,
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
};

const CLIENTS = [
  { ...clientBase, client_id: 'public-client', token_endpoint_auth_method: 'none' },
  {
    ...clientBase,
    client_id: 'confidential-client',
    client_secret: SECRETS.confidential,
    token_endpoint_auth_method: 'client_secret_post',
  },
  { ...clientBase, client_id: 'short-public', token_endpoint_auth_method: 'none' },
  {
    ...clientBase,
    client_id: 'short-confidential',
    client_secret: SECRETS.shortConfidential,
    token_endpoint_auth_method: 'client_secret_post',
  },
  {
    // Only for token introspection by a Make-like API written in tests.
    client_id: 'resource-server',
    client_secret: SECRETS.resourceServer,
    token_endpoint_auth_method: 'client_secret_basic',
    redirect_uris: [],
    grant_types: [],
    response_types: [],
  },
];

const SHORT_CLIENTS = new Set(['short-public', 'short-confidential']);

// Signing key: generated at every start. Generate PEM and import it (exporting a freshly
// generated KeyObject straight to JWK was seen to hang now and then on these machines).
function makeSigningKey() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const jwk = crypto.createPrivateKey(privateKey).export({ format: 'jwk' });
  const kid = crypto.randomBytes(8).toString('hex');
  return {
    jwk: {
      ...jwk, kid, use: 'sig', alg: 'RS256',
    },
    kid,
    publicKey: crypto.createPublicKey(publicKey),
  };
}

const SIGNING_KEY = makeSigningKey();

function htmlEscape(value) {
  return String(value)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

function sendJson(res, status, body, headers = {}) {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(payload),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(payload);
}

function sendHtml(res, status, html) {
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(html),
    'Cache-Control': 'no-store',
  });
  res.end(html);
}

async function readForm(req, limit = 64 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function findAccount(_ctx, id) {
  const user = Object.hasOwn(USERS, id) ? USERS[id] : undefined;
  if (!user) return undefined;
  return {
    accountId: id,
    async claims() {
      return {
        sub: user.sub, name: user.name, email: user.email, email_verified: user.email_verified,
      };
    },
  };
}

function buildProvider(issuer) {
  return new Provider(issuer, {
    clients: CLIENTS,
    clientAuthMethods: ['none', 'client_secret_post', 'client_secret_basic'],
    responseTypes: ['code'],
    routes: {
      authorization: '/oauth/v2/authorize',
      token: '/oauth/v2/token',
      jwks: '/oauth/v2/oidc/jwks',
      userinfo: '/oauth/v2/oidc/userinfo',
      revocation: '/oauth/v2/revoke',
      introspection: '/oauth/v2/introspect',
    },
    scopes: ['openid', ...API_SCOPES],
    // Make only advertises "sub"; name and email are mapped to "openid" too so that userinfo
    // returns them for a plain "openid ..." request (profile/email are supported as well).
    claims: {
      openid: ['sub', 'name', 'email', 'email_verified'],
      profile: ['name'],
      email: ['email', 'email_verified'],
    },
    findAccount,
    jwks: { keys: [SIGNING_KEY.jwk] },
    enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      rpInitiatedLogout: { enabled: false }, // Make has no end-session endpoint
      // Make knows no resource indicators: opaque access tokens carry the API scopes and are
      // accepted by userinfo and by the Make-like API below.
      resourceIndicators: { enabled: false },
    },
    pkce: { required: () => true },
    clockTolerance: 0,
    ttl: {
      AccessToken(_ctx, _token, client) {
        return client && SHORT_CLIENTS.has(client.clientId) ? SHORT_TTL : LONG_TTL;
      },
      AuthorizationCode: 60,
      IdToken: LONG_TTL,
      Interaction: 600,
      Session: 24 * 3600,
      Grant: 14 * 24 * 3600,
      RefreshToken: 14 * 24 * 3600,
    },
    // Like Make: confidential clients get a refresh token without offline_access, public
    // clients get none.
    issueRefreshToken(_ctx, client) {
      return client.grantTypeAllowed('refresh_token') && client.clientAuthMethod !== 'none';
    },
    rotateRefreshToken: true,
    expiresWithSession: () => false,
    interactions: {
      url(_ctx, interaction) {
        return `/interaction/${interaction.uid}`;
      },
    },
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html><head><title>oops! something went wrong</title></head><body>
<h1>oops! something went wrong</h1>
${Object.entries(out).map(([k, v]) => `<pre><strong>${htmlEscape(k)}</strong>: ${htmlEscape(v)}</pre>`).join('\n')}
</body></html>`;
    },
  });
}

function interactionPage(uid, details, client, notice = '') {
  const scopes = String(details.params.scope || '').split(' ').filter(Boolean);
  const options = Object.keys(USERS)
    .map((id) => `<option value="${htmlEscape(id)}">${htmlEscape(USERS[id].name)} (${htmlEscape(id)})</option>`)
    .join('');
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign in to Make (test provider)</title></head>
<body>
<h1>Sign in and authorize</h1>
${notice ? `<p class="notice">${htmlEscape(notice)}</p>` : ''}
<p>Prompt: <code id="prompt">${htmlEscape(details.prompt.name)}</code></p>
<p>Client <code id="client">${htmlEscape(client?.clientName || details.params.client_id)}</code> asks for:</p>
<ul id="scopes">${scopes.map((s) => `<li>${htmlEscape(s)}</li>`).join('')}</ul>
<form method="post" action="/interaction/${htmlEscape(uid)}" id="interaction-form">
  <label for="user">User</label>
  <select name="user" id="user">${options}</select>
  <button type="submit" name="decision" value="approve" id="approve">Approve</button>
  <button type="submit" name="decision" value="deny" id="deny">Deny</button>
</form>
</body></html>`;
}

async function handleInteraction(provider, req, res, uid) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    sendHtml(res, 400, `<!DOCTYPE html><html><body><h1>Interaction not found</h1><p>${htmlEscape(err.message)}</p></body></html>`);
    return;
  }
  if (details.uid !== uid) {
    sendHtml(res, 400, '<!DOCTYPE html><html><body><h1>Interaction mismatch</h1></body></html>');
    return;
  }
  const client = await provider.Client.find(details.params.client_id);

  if (req.method === 'GET') {
    sendHtml(res, 200, interactionPage(uid, details, client));
    return;
  }
  if (req.method !== 'POST') {
    sendHtml(res, 405, '<!DOCTYPE html><html><body><h1>Method not allowed</h1></body></html>');
    return;
  }

  const form = await readForm(req);
  const decision = form.get('decision') || 'approve';
  if (decision === 'deny') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }
  if (decision !== 'approve') {
    sendHtml(res, 400, interactionPage(uid, details, client, 'Unknown decision.'));
    return;
  }

  const { prompt, params, session } = details;
  let accountId;
  const result = {};
  if (prompt.name === 'login' || !session?.accountId) {
    accountId = form.get('user') || '';
    if (!Object.hasOwn(USERS, accountId)) {
      sendHtml(res, 400, interactionPage(uid, details, client, `Unknown user ${accountId}.`));
      return;
    }
    result.login = { accountId };
  } else {
    accountId = session.accountId;
  }

  // Consent in the same step: grant every requested scope and claim.
  let grant;
  if (details.grantId && !result.login) {
    grant = await provider.Grant.find(details.grantId);
  }
  if (!grant || grant.accountId !== accountId) {
    grant = new provider.Grant({ accountId, clientId: params.client_id });
  }
  const requestedScope = String(params.scope || '').split(' ').filter(Boolean);
  if (requestedScope.length) grant.addOIDCScope(requestedScope.join(' '));
  const missingClaims = prompt.details?.missingOIDCClaims || [];
  grant.addOIDCClaims(['sub', 'name', 'email', 'email_verified', ...missingClaims]);
  const missingScope = prompt.details?.missingOIDCScope || [];
  if (missingScope.length) grant.addOIDCScope(missingScope.join(' '));
  result.consent = { grantId: await grant.save() };

  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
}

// Make's docs call userinfo with the *ID token* as the bearer; oidc-provider only accepts access
// tokens there. Answer such requests here (signature, issuer, audience and expiry checked).
function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

function verifyIdToken(value, issuer) {
  const parts = value.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const header = b64urlJson(parts[0]);
    if (header.alg !== 'RS256' || header.kid !== SIGNING_KEY.kid) return undefined;
    const ok = crypto.verify(
      'sha256',
      Buffer.from(`${parts[0]}.${parts[1]}`),
      SIGNING_KEY.publicKey,
      Buffer.from(parts[2], 'base64url'),
    );
    if (!ok) return undefined;
    const payload = b64urlJson(parts[1]);
    const now = Math.floor(Date.now() / 1000);
    const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (payload.iss !== issuer) return undefined;
    if (typeof payload.exp !== 'number' || payload.exp <= now) return undefined;
    if (!audiences.some((aud) => CLIENTS.some((c) => c.client_id === aud))) return undefined;
    if (!Object.hasOwn(USERS, payload.sub)) return undefined;
    return payload;
  } catch {
    return undefined;
  }
}

function idTokenUserinfo(req, res, issuer) {
  if (!USERINFO_ACCEPTS_ID_TOKEN || !['GET', 'POST'].includes(req.method)) return false;
  const match = /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\s*$/i
    .exec(req.headers.authorization || '');
  if (!match) return false;
  const payload = verifyIdToken(match[1], issuer);
  if (!payload) {
    sendJson(res, 401, { error: 'invalid_token', error_description: 'invalid token provided' }, {
      'WWW-Authenticate': 'Bearer realm="userinfo", error="invalid_token", error_description="invalid token provided"',
    });
    return true;
  }
  const user = USERS[payload.sub];
  sendJson(res, 200, {
    sub: user.sub, name: user.name, email: user.email, email_verified: user.email_verified,
  });
  return true;
}

// Make accepts comma-separated scopes (scope=templates:read,scenarios:read); oidc-provider only
// spaces. Rewrite the authorization request's scope so both work.
function normaliseAuthorizationScope(req, issuer) {
  const url = new URL(req.url, issuer);
  const scope = url.searchParams.get('scope');
  if (scope && scope.includes(',')) {
    url.searchParams.set('scope', scope.split(/[\s,]+/).filter(Boolean).join(' '));
    req.url = `${url.pathname}${url.search}`;
  }
}

function apiError(res, status, message, detail, code) {
  const headers = status === 401 ? { 'WWW-Authenticate': 'Bearer error="invalid_token"' } : {};
  sendJson(res, status, {
    message, detail, code, suberrors: [],
  }, headers);
}

async function handleApi(provider, req, res, pathname) {
  if (pathname !== '/api/v2/users/me') {
    apiError(res, 404, 'Not found', `No such endpoint: ${pathname}`, 'SC404');
    return;
  }
  if (req.method !== 'GET') {
    apiError(res, 405, 'Method not allowed', `${req.method} is not allowed here`, 'SC405');
    return;
  }
  const auth = req.headers.authorization || '';
  const match = /^Bearer\s+(\S+)\s*$/i.exec(auth);
  if (!match) {
    apiError(res, 401, 'Access denied', 'Missing or malformed Authorization header.', 'SC401');
    return;
  }
  const token = await provider.AccessToken.find(match[1]);
  if (!token || token.isExpired) {
    apiError(res, 401, 'Access denied', 'Invalid or expired access token.', 'SC401');
    return;
  }
  const grant = await provider.Grant.find(token.grantId);
  if (!grant || grant.clientId !== token.clientId || grant.accountId !== token.accountId) {
    apiError(res, 401, 'Access denied', 'Invalid or expired access token.', 'SC401');
    return;
  }
  const user = Object.hasOwn(USERS, token.accountId) ? USERS[token.accountId] : undefined;
  if (!user) {
    apiError(res, 401, 'Access denied', 'Unknown user.', 'SC401');
    return;
  }
  if (!token.scopes.has('user:read')) {
    apiError(res, 403, 'Permission denied', 'The access token lacks the scope user:read.', 'SC403');
    return;
  }
  sendJson(res, 200, {
    authUser: {
      id: user.id, name: user.name, email: user.email, sub: user.sub,
    },
  });
}

async function main() {
  const requestedPort = Number.parseInt(process.env.PORT || '0', 10);
  let handler = (_req, res) => {
    res.writeHead(503);
    res.end();
  };
  const server = http.createServer((req, res) => handler(req, res));
  server.keepAliveTimeout = 5000;

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(requestedPort, HOST, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address();
  const issuer = `http://${HOST}:${port}`;

  const provider = buildProvider(issuer);
  provider.on('server_error', (_ctx, err) => {
    process.stderr.write(`oidc-provider server_error: ${err?.stack || err}\n`);
  });
  const providerCallback = provider.callback();

  handler = (req, res) => {
    const { pathname } = new URL(req.url, issuer);
    let work;
    const interaction = /^\/interaction\/([A-Za-z0-9_-]+)\/?$/.exec(pathname);
    if (interaction) {
      work = handleInteraction(provider, req, res, interaction[1]);
    } else if (pathname.startsWith('/api/v2/')) {
      work = handleApi(provider, req, res, pathname);
    } else if (pathname === '/oauth/v2/oidc/userinfo' && idTokenUserinfo(req, res, issuer)) {
      return;
    } else {
      if (pathname === '/oauth/v2/authorize' && req.method === 'GET') {
        normaliseAuthorizationScope(req, issuer);
      }
      providerCallback(req, res);
      return;
    }
    work.catch((err) => {
      process.stderr.write(`request error ${req.method} ${pathname}: ${err?.stack || err}\n`);
      if (!res.headersSent) {
        sendJson(res, 500, { message: 'Internal error', detail: 'See server log.', code: 'SC500' });
      } else {
        res.destroy();
      }
    });
  };

  const info = {
    issuer,
    api_url: `${issuer}/api/v2/`,
    short_ttl: SHORT_TTL,
    clients: CLIENTS.map((c) => ({ client_id: c.client_id, auth: c.token_endpoint_auth_method })),
    users: Object.fromEntries(Object.entries(USERS).map(([id, u]) => [id, {
      sub: u.sub, name: u.name, email: u.email, email_verified: u.email_verified,
    }])),
  };
  let out = `PORT=${port}\nINFO=${JSON.stringify(info)}\n`;
  if (Object.keys(secretsPrinted).length) {
    out += `SECRETS=${JSON.stringify(secretsPrinted)}\n`;
  }
  process.stdout.write(out);

  const shutdown = () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  if (process.env.EXIT_WITH_STDIN === '1') {
    process.stdin.on('end', shutdown);
    process.stdin.on('close', shutdown);
    process.stdin.on('error', shutdown);
    process.stdin.resume();
  }
}

main().catch((err) => {
  process.stderr.write(`failed to start: ${err?.stack || err}\n`);
  process.exit(1);
});
