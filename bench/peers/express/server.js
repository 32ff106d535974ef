// The seed's design of the accept path, built the way a Node.js engineer would build it:
// Express 5 + mysql2, a Node cluster with one pool per worker, prepared statements.
//
// POST /v1/submissions does what runtime/api/submissions.py + runtime/submissions.py do:
// the same validation of `type`/`data` (runtime/envelope.py: SubmissionIn), the same
// canonical JSON and SHA-256, the same two INSERTs (submissions, outbox; runtime/db.py's
// schema, created by our migrations) in one transaction at READ COMMITTED, 202 only after
// the COMMIT, the same answer (id, received_at, sha256, object_name, Location), the same
// Idempotency-Key rules, problem+json errors. GET /healthz for readiness.
//
//   PEER_DATABASE_URL=mysql://user:pass@host:port/db PEER_PORT=8080 PEER_WORKERS=4 \
//   PEER_POOL_SIZE=8 node server.js
//
// Known difference, irrelevant to the benchmark's body: JavaScript numbers are doubles, so
// integers beyond 2^53 and floats print as JavaScript prints them (Python: `1.0`, `1e+16`).

"use strict";

const cluster = require("node:cluster");
const crypto = require("node:crypto");
const express = require("express");
const mysql = require("mysql2/promise");

const PORT = Number(process.env.PEER_PORT || 8080);
const WORKERS = Number(process.env.PEER_WORKERS || 4);
const POOL_SIZE = Number(process.env.PEER_POOL_SIZE || 8); // runtime.settings: database_pool_size
const MAX_BODY = Number(process.env.PEER_MAX_BODY_BYTES || 262144);
const TYPE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/; // runtime.envelope.TYPE_PATTERN
const FIELDS = new Set(["schema_version", "type", "data"]);
const PROBLEMS = "https://skybridge.example/problems/";

const INSERT_SUBMISSION =
  "INSERT INTO submissions (id, schema_version, type, body, sha256, idempotency_key, status, " +
  "attempts, last_error, message_id, received_at, updated_at, forwarded_at, redeliveries) " +
  "VALUES (?, ?, ?, ?, ?, ?, 'accepted', 0, NULL, NULL, ?, ?, NULL, 0)";
const INSERT_OUTBOX =
  "INSERT INTO outbox (submission_id, created_at, available_at, attempts) VALUES (?, ?, ?, 0)";
const BY_KEY = "SELECT id, sha256, received_at FROM submissions WHERE idempotency_key = ?";

// -- ids: ULID (48-bit milliseconds + 80 random bits), monotonic within a process ---------

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
let lastMillis = -1;
const lastRandom = Buffer.alloc(10);

function newId(millis) {
  if (millis === lastMillis) {
    for (let i = 9; i >= 0; i--) { // the previous random part plus one
      lastRandom[i] = (lastRandom[i] + 1) & 0xff;
      if (lastRandom[i] !== 0) break;
    }
  } else {
    crypto.randomFillSync(lastRandom);
    lastMillis = millis;
  }
  let out = "";
  let time = millis;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[time % 32] + out;
    time = Math.floor(time / 32);
  }
  let bits = 0;
  let value = 0;
  for (const byte of lastRandom) { // 80 bits, 5 at a time
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(value >> bits) & 31];
    }
  }
  return out;
}

// -- canonical JSON: sorted keys, no spaces, UTF-8 (runtime.envelope.canonical_json) ------

function canonical(value) {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  const keys = Object.keys(value).sort();
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
}

// -- problems (RFC 9457), as runtime/api/problems.py renders them --------------------------

function problem(res, status, slug, title, detail, extra = {}) {
  res.status(status).type("application/problem+json");
  res.send(JSON.stringify({ type: PROBLEMS + slug, title, status, detail, ...extra }));
}

function invalid(res, field, reason) {
  const errors = [{ field, reason }];
  problem(res, 422, "validation-failed", "Validation Failed", `${field}: ${reason}`, { errors });
}

function validate(payload, res) {
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    invalid(res, "/", "Input should be an object");
    return false;
  }
  for (const key of Object.keys(payload)) {
    if (!FIELDS.has(key)) {
      invalid(res, `/${key}`, "Extra inputs are not permitted");
      return false;
    }
  }
  if (payload.schema_version !== undefined && payload.schema_version !== "1") {
    invalid(res, "/schema_version", "Input should be '1'");
    return false;
  }
  if (typeof payload.type !== "string" || !TYPE_PATTERN.test(payload.type)) {
    invalid(res, "/type", payload.type === undefined ? "Field required" : "Invalid type");
    return false;
  }
  const data = payload.data;
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    invalid(res, "/data", data === undefined ? "Field required" : "Input should be an object");
    return false;
  }
  return true;
}

function idempotencyKey(req, res) {
  const key = req.get("Idempotency-Key");
  if (key === undefined) return null;
  if (key.length < 1 || key.length > 255 || !/^[\x20-\x7e]+$/.test(key)) {
    problem(res, 400, "invalid-header", "Invalid Idempotency-Key",
      "Idempotency-Key must be 1-255 printable ASCII characters",
      { errors: [{ field: "header:Idempotency-Key", reason: "invalid value" }] });
    return undefined;
  }
  return key;
}

// -- the app ---------------------------------------------------------------------------------

function sqlTime(date) { // DATETIME(6), naive UTC, as runtime.db.UTCDateTime stores it
  return date.toISOString().replace("T", " ").replace("Z", "000");
}

function accepted(res, id, receivedAt, sha256, replayed) {
  const day = receivedAt.toISOString().slice(0, 10).replaceAll("-", "/");
  res.status(202).set("Location", `/v1/submissions/${id}`);
  if (replayed) res.set("Idempotent-Replayed", "true");
  res.json({
    id,
    status: "accepted",
    received_at: receivedAt.toISOString(),
    sha256,
    object_name: `submissions/${day}/${id}.json`,
  });
}

async function replay(pool, res, key, digest) {
  const [rows] = await pool.execute(BY_KEY, [key]);
  if (rows.length === 0) return false;
  const row = rows[0];
  if (row.sha256 !== digest) {
    problem(res, 409, "idempotency-conflict", "Idempotency-Key Reused",
      `Idempotency-Key '${key}' was already used with a different body`,
      { errors: [{ field: "header:Idempotency-Key", reason: "reused with another body" }],
        submission_id: row.id });
  } else {
    accepted(res, row.id, new Date(row.received_at.replace(" ", "T") + "Z"), row.sha256, true);
  }
  return true;
}

function createApp(pool) {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false); // a 202 with a fresh id is never revalidated
  app.use(express.json({ limit: MAX_BODY, type: ["application/json", "application/*+json"] }));

  app.get("/healthz", (req, res) => res.json({ status: "ok" }));

  app.post("/v1/submissions", async (req, res, next) => {
    try {
      const key = idempotencyKey(req, res);
      if (key === undefined) return;
      if (req.body === undefined) {
        const type = req.get("Content-Type") || "missing";
        return problem(res, 415, "unsupported-media-type", "Unsupported Media Type",
          `Content-Type must be application/json, not ${type}`);
      }
      const payload = req.body;
      if (!validate(payload, res)) return;
      const body = canonical({ data: payload.data, schema_version: "1", type: payload.type });
      const digest = crypto.createHash("sha256").update(body).digest("hex");
      if (key !== null && (await replay(pool, res, key, digest))) return;
      const now = new Date();
      const id = newId(now.getTime());
      const at = sqlTime(now);
      const connection = await pool.getConnection();
      try {
        await connection.beginTransaction();
        await connection.execute(INSERT_SUBMISSION, [id, "1", payload.type, body, digest, key, at, at]);
        await connection.execute(INSERT_OUTBOX, [id, at, at]);
        await connection.commit();
      } catch (error) {
        await connection.rollback().catch(() => {});
        throw error;
      } finally {
        connection.release();
      }
      accepted(res, id, now, digest, false);
    } catch (error) {
      if (error.code === "ER_DUP_ENTRY" && req.get("Idempotency-Key")) {
        // Two requests with one key raced; the loser answers with the winner's row.
        try {
          const key = req.get("Idempotency-Key");
          const body = canonical({ data: req.body.data, schema_version: "1", type: req.body.type });
          const digest = crypto.createHash("sha256").update(body).digest("hex");
          if (await replay(pool, res, key, digest)) return;
        } catch (again) {
          return next(again);
        }
      }
      next(error);
    }
  });

  app.use((req, res) => problem(res, 404, "not-found", "Not Found", `no resource at ${req.path}`));

  // eslint-disable-next-line no-unused-vars
  app.use((error, req, res, next) => {
    if (error.type === "entity.too.large") {
      return problem(res, 413, "too-large", "Content Too Large",
        `the request body is larger than ${MAX_BODY} bytes`);
    }
    if (error.type === "entity.parse.failed" || error.type === "encoding.unsupported") {
      return problem(res, 400, "malformed-json", "Malformed JSON", `malformed JSON: ${error.message}`);
    }
    if (error.code && (error.fatal || /^(ECONN|ETIMEDOUT|PROTOCOL_)/.test(error.code))) {
      res.set("Retry-After", "1");
      return problem(res, 503, "database-unavailable", "Service Unavailable",
        "the database is unavailable; retry after the indicated delay");
    }
    console.error(error);
    problem(res, 500, "internal-error", "Internal Server Error", "an unexpected error occurred");
  });
  return app;
}

// -- cluster: as many workers as our gunicorn, each with its own pool ----------------------

if (cluster.isPrimary) {
  let stopping = false;
  for (let i = 0; i < WORKERS; i++) cluster.fork();
  cluster.on("exit", (worker, code) => {
    if (!stopping) {
      console.error(`worker ${worker.process.pid} exited (${code}); starting another`);
      cluster.fork();
    }
  });
  for (const signal of ["SIGTERM", "SIGINT"]) {
    process.on(signal, () => {
      stopping = true;
      for (const worker of Object.values(cluster.workers)) worker.kill("SIGTERM");
      setTimeout(() => process.exit(0), 2000).unref();
      cluster.disconnect(() => process.exit(0));
    });
  }
} else {
  const pool = mysql.createPool({
    uri: process.env.PEER_DATABASE_URL,
    connectionLimit: POOL_SIZE,
    maxIdle: POOL_SIZE,
    charset: "utf8mb4",
    timezone: "Z",
    dateStrings: true,
  });
  // The isolation level our engine uses (runtime/db.py: READ COMMITTED for the outbox).
  pool.pool.on("connection", (connection) => {
    connection.query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
  });
  const server = createApp(pool).listen(PORT, "127.0.0.1");
  process.on("SIGTERM", () => server.close(() => pool.end().finally(() => process.exit(0))));
}
