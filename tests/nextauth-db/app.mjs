// The Next.js app of the database-session tests: next-auth 4's own code with an adapter's own
// code on a real database, driven by the tests one JSON line at a time.
//
// Each line on stdin is a request {"id", "op", "setup", "url", ...}; each answer is one line on
// stdout {"id", "result"} or {"id", "error"}. `setup` names the adapter and its driver:
//   pg               @auth/pg-adapter with pg (PostgreSQL)
//   kysely-pg        @auth/kysely-adapter with Kysely's PostgresDialect (pg) on Prisma's tables
//   kysely-mysql     @auth/kysely-adapter with Kysely's MysqlDialect (mysql2) on Prisma's tables
//   drizzle-pg       @auth/drizzle-adapter, drizzle-orm/node-postgres, its default tables
//   drizzle-sqlite   @auth/drizzle-adapter, drizzle-orm/better-sqlite3, its default tables
//   sequelize-pg     @auth/sequelize-adapter with Sequelize (pg), its models synced
// Ops:
//   sync        what the adapter does to make its own tables (Sequelize's sync; else nothing)
//   sign-in     a user (adapter.createUser) and a session for it as next-auth makes one at
//               sign-in (its generateSessionToken, adapter.createSession) expiring at
//               `expires` (ISO 8601): {token, cookie, user}
//   session     next-auth's getServerSession for the cookie `token`, as the app's route calls
//               it: the session, or null
//   sign-out    adapter.deleteSession, as next-auth's sign-out does
//   close       ends the connections of `url`
//
// Node runs with TZ=UTC: Kysely hands pg and mysql2 JavaScript Dates, which they send as local
// time, and Prisma, whose tables Kysely fills here, stores UTC.

import { createRequire } from "node:module";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

import { DrizzleAdapter } from "@auth/drizzle-adapter";
import { KyselyAdapter } from "@auth/kysely-adapter";
import PostgresAdapter from "@auth/pg-adapter";
import SequelizeAdapter from "@auth/sequelize-adapter";
import Database from "better-sqlite3";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import { drizzle as drizzleSqlite } from "drizzle-orm/better-sqlite3";
import { Kysely, MysqlDialect, PostgresDialect } from "kysely";
import mysql from "mysql2";
import pg from "pg";
import { Sequelize } from "sequelize";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const { getServerSession } = require("next-auth/next");
// next-auth's own options, with its generateSessionToken; not in the package's exports map.
const { init } = require(path.join(here, "node_modules", "next-auth", "core", "init.js"));

const SECRET = "test-app-secret-0123456789abcdefghijklmnopqrs";
const COOKIE = "next-auth.session-token";

function pgPool(url) {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on("error", () => {}); // a connection the test's teardown ended
  return pool;
}

const makers = {
  pg: (url) => {
    const pool = pgPool(url);
    return { adapter: PostgresAdapter(pool), close: () => pool.end() };
  },
  "kysely-pg": (url) => {
    const db = new Kysely({ dialect: new PostgresDialect({ pool: pgPool(url) }) });
    return { adapter: KyselyAdapter(db), close: () => db.destroy() };
  },
  "kysely-mysql": (url) => {
    // `session_time_zone` stands for a server whose time zone is not UTC.
    const { session_time_zone: zone, ...rest } = Object.fromEntries(new URL(url).searchParams);
    const bare = new URL(url);
    bare.search = new URLSearchParams(rest).toString();
    const pool = mysql.createPool({ uri: bare.toString(), connectionLimit: 2 });
    if (zone) pool.on("connection", (conn) => conn.query(`SET time_zone = '${zone}'`));
    const db = new Kysely({ dialect: new MysqlDialect({ pool }) });
    return { adapter: KyselyAdapter(db), close: () => db.destroy() };
  },
  "drizzle-pg": (url) => {
    const pool = pgPool(url);
    return { adapter: DrizzleAdapter(drizzlePg(pool)), close: () => pool.end() };
  },
  "drizzle-sqlite": (url) => {
    const file = new Database(url);
    return { adapter: DrizzleAdapter(drizzleSqlite(file)), close: () => file.close() };
  },
  "sequelize-pg": (url) => {
    const sequelize = new Sequelize(url, { logging: false, pool: { max: 2 } });
    const adapter = SequelizeAdapter(sequelize);
    return { adapter, sync: () => sequelize.sync(), close: () => sequelize.close() };
  },
};

const apps = new Map();

function appOf({ setup, url }) {
  const key = `${setup} ${url}`;
  if (!apps.has(key)) apps.set(key, makers[setup](url));
  return apps.get(key);
}

// next-auth's errors are logged, not thrown (getServerSession answers null): keep them.
function authOptions(adapter, errors) {
  return {
    adapter,
    providers: [],
    secret: SECRET,
    session: { strategy: "database" },
    logger: { error: (code, error) => errors.push(`${code}: ${error?.message ?? error}`), warn() {}, debug() {} },
  };
}

async function signIn(adapter, request) {
  const { options } = await init({
    authOptions: authOptions(adapter, []),
    origin: "http://localhost:3000",
    action: "session",
    cookies: {},
    isPost: false,
  });
  const token = options.session.generateSessionToken();
  const { emailVerified, ...profile } = request.user;
  const verified = emailVerified ? new Date(emailVerified) : null;
  const user = await adapter.createUser({ ...profile, emailVerified: verified });
  await adapter.createSession({ sessionToken: token, userId: user.id, expires: new Date(request.expires) });
  return { token, cookie: COOKIE, user };
}

async function session(adapter, { token }) {
  const errors = [];
  const cookies = { [COOKIE]: token };
  const req = { headers: { cookie: `${COOKIE}=${token}` }, cookies };
  const res = { getHeader() {}, setCookie() {}, setHeader() {} };
  const found = await getServerSession(req, res, authOptions(adapter, errors));
  if (errors.length) throw new Error(errors.join("; "));
  return found;
}

async function answer(request) {
  const app = appOf(request);
  switch (request.op) {
    case "sync":
      await app.sync?.();
      return null;
    case "sign-in":
      return signIn(app.adapter, request);
    case "session":
      return session(app.adapter, request);
    case "sign-out":
      await app.adapter.deleteSession(request.token);
      return null;
    case "close":
      apps.delete(`${request.setup} ${request.url}`);
      await app.close();
      return null;
    default:
      throw new Error(`unknown op ${JSON.stringify(request.op)}`);
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  const request = JSON.parse(line);
  let reply;
  try {
    reply = { id: request.id, result: (await answer(request)) ?? null };
  } catch (error) {
    reply = { id: request.id, error: String(error?.stack ?? error) };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
}
