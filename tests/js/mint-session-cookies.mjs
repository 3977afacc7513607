// Session cookies as a Next.js app's next-auth makes them, for the tests and the benchmarks.
//
// Reads a JSON array of specs on stdin and writes a JSON array of results on stdout, one per
// spec, in order. A spec: {"kind", "secret", "cookieName"?, "secure"?, "claims"?, "maxAge"?}.
// A result: {"cookies": [{"name", "value"}], "token", "payload"}, where `payload` is what the
// package's own `decode` reads back (null when it refuses the token).
//
// Kinds made by the packages' own code, end to end:
//   v4        next-auth/jwt `encode` (A256GCM, salt ""), chunked by next-auth's SessionStore
//   v5        @auth/core/jwt `encode` with salt = the cookie name (A256CBC-HS512 and a kid),
//             chunked by @auth/core's SessionStore; `secret` may be an array (rotation), or
//             the spec's `env` ({AUTH_SECRET, AUTH_SECRET_1..3}) gives the secrets as Auth.js
//             reads them from the environment (its setEnvDefaults)
//   database  the session token next-auth makes for the "database" strategy (its `init` with
//             an adapter, `session.generateSessionToken`), which is a random id, not a JWT
// Kinds the packages' `encode` never makes, built with the `jose` and `@panva/hkdf` the
// packages themselves use, with their key derivation (`payload` says whether the package's
// own `decode` accepts the result):
//   v5-gcm    dir + A256GCM under Auth.js's 32-byte key and its SHA-256 thumbprint as kid
//   no-exp    a v4 token without `exp`
//   zip       a v4 token with a `zip: DEF` header (deflated claims)
//   jws       an HS256-signed JWT (three parts), `alg-none` an unsecured one
//   other-alg A256KW key wrapping instead of dir; `other-enc` dir + A128GCM
//
// SessionStore, init and setEnvDefaults are not in the packages' `exports` maps, so they are
// loaded from their files.

import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { decode as decodeV5, encode as encodeV5 } from "@auth/core/jwt";
import { hkdf } from "@panva/hkdf";
import * as jose from "jose";
import { decode as decodeV4, encode as encodeV4 } from "next-auth/jwt";

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = path.join(here, "node_modules");
const require = createRequire(import.meta.url);
const nextAuthRequire = createRequire(path.join(modules, "next-auth", "package.json"));
const { SessionStore: SessionStoreV4 } = require(
  path.join(modules, "next-auth", "core", "lib", "cookie.js"),
);
const { init: initV4 } = require(path.join(modules, "next-auth", "core", "init.js"));
const { SessionStore: SessionStoreV5 } = await import(
  pathToFileURL(path.join(modules, "@auth", "core", "lib", "utils", "cookie.js")).href
);
const { setEnvDefaults } = await import(
  pathToFileURL(path.join(modules, "@auth", "core", "lib", "utils", "env.js")).href
);
// next-auth v4 decodes with jose 4 (its own dependency), which still inflates `zip: DEF`.
const joseV4 = nextAuthRequire("jose");

const quiet = { debug() {}, warn() {}, error() {} };
const V4_INFO = "NextAuth.js Generated Encryption Key";
const now = () => Math.floor(Date.now() / 1000);

function defaultName(kind, secure) {
  const base = kind.startsWith("v5") ? "authjs.session-token" : "next-auth.session-token";
  return secure ? `__Secure-${base}` : base;
}

function chunkV4(name, token) {
  return new SessionStoreV4({ name, options: {} }, { cookies: {}, headers: {} }, quiet).chunk(
    token,
    {},
  );
}

function chunkV5(name, token) {
  return new SessionStoreV5({ name, options: {} }, {}, quiet).chunk(token, {});
}

async function decodesWith(decode, params) {
  try {
    return await decode(params);
  } catch {
    return null;
  }
}

function claimsOf(spec) {
  const maxAge = spec.maxAge ?? 3600;
  return { iat: now(), exp: now() + maxAge, jti: randomUUID(), ...spec.claims };
}

const v4Key = (secret) => hkdf("sha256", secret, "", V4_INFO, 32);

function secretOf(spec) {
  if (!spec.env) return spec.secret;
  const config = { providers: [] };
  setEnvDefaults(spec.env, config, true);
  return config.secret;
}

async function mint(spec) {
  const secret = secretOf(spec);
  const first = Array.isArray(secret) ? secret[0] : secret;
  const name = spec.cookieName ?? defaultName(spec.kind, spec.secure ?? false);
  const maxAge = spec.maxAge ?? 3600;
  const token = spec.claims ?? {};
  const v4Decode = (t) => decodesWith(decodeV4, { token: t, secret: first });
  const v5Decode = (t) => decodesWith(decodeV5, { token: t, secret, salt: name });
  switch (spec.kind) {
    case "v4": {
      const jwt = await encodeV4({ token, secret: first, maxAge });
      return { cookies: chunkV4(name, jwt), token: jwt, payload: await v4Decode(jwt) };
    }
    case "v5": {
      const jwt = await encodeV5({ token, secret, salt: name, maxAge });
      return { cookies: chunkV5(name, jwt), token: jwt, payload: await v5Decode(jwt) };
    }
    case "v5-gcm": {
      const key = await hkdf("sha256", first, name, `Auth.js Generated Encryption Key (${name})`, 32);
      const kid = await jose.calculateJwkThumbprint(
        { kty: "oct", k: jose.base64url.encode(key) },
        "sha256",
      );
      const jwt = await new jose.EncryptJWT(claimsOf(spec))
        .setProtectedHeader({ alg: "dir", enc: "A256GCM", kid })
        .encrypt(key);
      return { cookies: chunkV5(name, jwt), token: jwt, payload: await v5Decode(jwt) };
    }
    case "no-exp": {
      const { exp: _dropped, ...claims } = claimsOf(spec);
      const jwt = await new jose.EncryptJWT(claims)
        .setProtectedHeader({ alg: "dir", enc: "A256GCM" })
        .encrypt(await v4Key(first));
      return { cookies: chunkV4(name, jwt), token: jwt, payload: await v4Decode(jwt) };
    }
    case "zip": {
      const plaintext = new TextEncoder().encode(JSON.stringify(claimsOf(spec)));
      const jwt = await new joseV4.CompactEncrypt(plaintext)
        .setProtectedHeader({ alg: "dir", enc: "A256GCM", zip: "DEF" })
        .encrypt(await v4Key(first));
      return { cookies: chunkV4(name, jwt), token: jwt, payload: await v4Decode(jwt) };
    }
    case "jws": {
      const jwt = await new jose.SignJWT(claimsOf(spec))
        .setProtectedHeader({ alg: "HS256" })
        .sign(new TextEncoder().encode(first));
      return { cookies: chunkV4(name, jwt), token: jwt, payload: await v4Decode(jwt) };
    }
    case "alg-none": {
      const jwt = new jose.UnsecuredJWT(claimsOf(spec)).encode();
      return { cookies: chunkV4(name, jwt), token: jwt, payload: await v4Decode(jwt) };
    }
    case "other-alg": {
      const jwt = await new jose.EncryptJWT(claimsOf(spec))
        .setProtectedHeader({ alg: "A256KW", enc: "A256GCM" })
        .encrypt(await v4Key(first));
      return { cookies: chunkV4(name, jwt), token: jwt, payload: await v4Decode(jwt) };
    }
    case "other-enc": {
      const key = (await v4Key(first)).slice(0, 16);
      const jwt = await new jose.EncryptJWT(claimsOf(spec))
        .setProtectedHeader({ alg: "dir", enc: "A128GCM" })
        .encrypt(key);
      return { cookies: chunkV4(name, jwt), token: jwt, payload: await v4Decode(jwt) };
    }
    case "database": {
      const { options } = await initV4({
        authOptions: { providers: [], secret: first, adapter: {} },
        origin: "http://localhost:3000",
        action: "session",
        cookies: {},
        isPost: false,
      });
      if (options.session.strategy !== "database") throw new Error("not a database session");
      const id = await options.session.generateSessionToken();
      return { cookies: [{ name, value: id }], token: id, payload: null };
    }
    default:
      throw new Error(`unknown kind ${JSON.stringify(spec.kind)}`);
  }
}

const specs = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const spec of specs) {
  const { cookies, token, payload } = await mint(spec);
  results.push({ cookies: cookies.map(({ name, value }) => ({ name, value })), token, payload });
}
process.stdout.write(JSON.stringify(results));
