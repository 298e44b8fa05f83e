/**
 * The transport against a local HTTP peer that checks every signature the way the server does:
 * retries re-signed with the same Idempotency-Key, Retry-After honoured or refused past its
 * cap, timeouts and connection errors retried, problems turned into errors.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  ConflictError,
  NotFoundError,
  Opsdeck,
  OpsdeckConnectionError,
  OpsdeckError,
  RateLimitError,
  ServerError,
  sign,
  ValidationError,
} from "../../src/index.js";
import { json, startPeer, type Handler, type Peer, type Received } from "../helpers.js";

const KEY = "key_unit";
const SECRET = "sk_unit_secret";

/** The server's check: the signature over the target and the body exactly as received. */
function signedCorrectly(request: Received): boolean {
  const stamp = String(request.headers["opsdeck-timestamp"]);
  const expected = sign(SECRET, stamp, request.method, request.url, request.body);
  return request.headers["opsdeck-key"] === KEY && request.headers["opsdeck-signature"] === expected;
}

let handler: Handler = () => {};
let peer: Peer;
before(async () => {
  peer = await startPeer((request, response, index) => {
    if (!signedCorrectly(request)) return json(response, 401, { title: "Unauthorized", status: 401 });
    handler(request, response, index);
  });
});
after(() => peer.close());

function client(options: Partial<ConstructorParameters<typeof Opsdeck>[0]> = {}): Opsdeck {
  peer.received.length = 0;
  return new Opsdeck({ baseUrl: peer.url, keyId: KEY, secret: SECRET, backoffMs: 5, ...options });
}

describe("signing what is sent", () => {
  test("a query is signed as sent, percent-encoding kept", async () => {
    handler = (_, res) => json(res, 200, { data: [], next_cursor: null });
    const opsdeck = client();
    await opsdeck.request("GET", "/api/v1/jobs?cursor=eyJpZCI6IDQyfQ%3D%3D&type=a%20b");
    await opsdeck.jobs.list({ type: "email send/ü", cursor: "x==", limit: 2 });
    assert.equal(peer.received[0]!.url, "/api/v1/jobs?cursor=eyJpZCI6IDQyfQ%3D%3D&type=a%20b");
    assert.match(peer.received[1]!.url, /type=email\+send%2F%C3%BC&cursor=x%3D%3D&limit=2$/);
  });

  test("a JSON write: UTF-8 bytes, a generated Idempotency-Key, reads carry none", async () => {
    handler = (_, res) => json(res, 202, { id: "job_1", status: "pending" });
    const opsdeck = client();
    await opsdeck.jobs.submit({ type: "system.echo", payload: { message: "Wanjikũ — €" } });
    await opsdeck.jobs.get("job_1");
    const [write, read] = peer.received;
    assert.equal(write!.headers["content-type"], "application/json");
    assert.deepEqual(JSON.parse(write!.body.toString("utf8")).payload, { message: "Wanjikũ — €" });
    assert.match(String(write!.headers["idempotency-key"]), /^[0-9a-f-]{36}$/);
    assert.equal(read!.headers["idempotency-key"], undefined);
  });

  test("an upload is multipart bytes signed as sent", async () => {
    handler = (_, res) => json(res, 202, { id: "scn_1", status: "pending" });
    await client().scans.upload(Buffer.from("hello\n"), { filename: "a.txt" });
    const [upload] = peer.received;
    const boundary = String(upload!.headers["content-type"]).split("boundary=")[1];
    assert.ok(boundary && upload!.body.includes(`--${boundary}--\r\n`));
    assert.ok(upload!.body.includes('filename="a.txt"\r\nContent-Type: application/octet-stream\r\n\r\nhello\n\r\n'));
  });
});

describe("retries", () => {
  test("5xx: tried again, re-signed, with the same Idempotency-Key and body", async () => {
    handler = (_, res, n) => (n < 2 ? json(res, 503, { title: "Unavailable", status: 503 }) : json(res, 202, { id: "job_1" }));
    const job = await client().jobs.submit({ type: "system.echo" }, { idempotencyKey: "order-1" });
    assert.equal(job.id, "job_1");
    assert.equal(peer.received.length, 3);
    assert.ok(peer.received.every((r) => r.headers["idempotency-key"] === "order-1"));
    assert.ok(peer.received.every((r) => r.body.equals(peer.received[0]!.body)));
  });

  test("the Idempotent-Replayed header marks a submission replayed", async () => {
    handler = (_, res) => json(res, 202, { id: "job_1" }, { "Idempotent-Replayed": "true" });
    assert.equal((await client().jobs.submit({ type: "system.echo" })).replayed, true);
  });

  test("429 waits the Retry-After the server sent, then succeeds", async () => {
    handler = (_, res, n) =>
      n === 0 ? json(res, 429, { title: "Too many requests", status: 429 }, { "Retry-After": "1" }) : json(res, 200, { id: "job_1" });
    const started = Date.now();
    await client().jobs.get("job_1");
    assert.ok(Date.now() - started >= 1000, "waited the Retry-After");
    assert.equal(peer.received.length, 2);
    const [refused, retried] = peer.received.map((r) => Number(r.headers["opsdeck-timestamp"]));
    assert.ok(retried! > refused!, "the retry is signed afresh, with a later timestamp");
  });

  test("a Retry-After past the cap is not waited for: RateLimitError at once, with retryAfter", async () => {
    handler = (_, res) => json(res, 429, { title: "Too many requests", status: 429, detail: "slow down" }, { "Retry-After": "120" });
    const started = Date.now();
    const err = await client({ maxRetryAfterMs: 60_000 }).jobs.get("job_1").catch((e: unknown) => e);
    assert.ok(err instanceof RateLimitError && err instanceof OpsdeckError);
    assert.equal(err.retryAfter, 120);
    assert.equal(err.detail, "slow down");
    assert.equal(peer.received.length, 1);
    assert.ok(Date.now() - started < 30_000, "not the 120 s asked");
  });

  test("retries off: the first 5xx is thrown", async () => {
    handler = (_, res) => json(res, 500, { title: "Internal error", status: 500 });
    await assert.rejects(client({ maxRetries: 0 }).jobs.get("job_1"), ServerError);
    assert.equal(peer.received.length, 1);
  });

  test("attempts are bounded: maxRetries 2 is three tries, then the last answer is thrown", async () => {
    handler = (_, res) => json(res, 502, { title: "Bad gateway", status: 502 });
    await assert.rejects(client({ maxRetries: 2 }).jobs.get("job_1"), (e: unknown) => e instanceof ServerError && e.status === 502);
    assert.equal(peer.received.length, 3);
  });

  test("501 Not Implemented is thrown at once, not retried: a permanent answer", async () => {
    handler = (_, res, n) => (n === 0 ? json(res, 501, { title: "Not Implemented", status: 501 }) : json(res, 200, { id: "job_1" }));
    await assert.rejects(client().jobs.get("job_1"), (e: unknown) => e instanceof ServerError && e.status === 501);
    assert.equal(peer.received.length, 1);
  });

  test("4xx is not retried", async () => {
    handler = (_, res) => json(res, 409, { title: "Conflict", status: 409, detail: "job is running" });
    await assert.rejects(client().jobs.cancel("job_1"), ConflictError);
    assert.equal(peer.received.length, 1);
  });

  test("a try that times out is tried again; OpsdeckConnectionError when every one does", async () => {
    handler = (_, res) => setTimeout(() => json(res, 200, {}), 400);
    const err = await client({ timeoutMs: 50, maxRetries: 1 }).jobs.get("job_1").catch((e: unknown) => e);
    assert.ok(err instanceof OpsdeckConnectionError, String(err));
    assert.match(err.message, /timed out after 50 ms \(2 tries\)/);
    await new Promise((resolve) => setTimeout(resolve, 500)); // the late answers, before the next test
  });

  test("a connection cut before the answer is retried with the same key", async () => {
    handler = (_, res, n) => (n === 0 ? res.socket?.destroy() : json(res, 202, { id: "job_1" }));
    const job = await client().jobs.submit({ type: "system.echo" });
    assert.equal(job.id, "job_1");
    assert.equal(peer.received.length, 2);
    assert.equal(peer.received[0]!.headers["idempotency-key"], peer.received[1]!.headers["idempotency-key"]);
  });

  test("a request fetch refuses to send (a bad header value) is thrown at once, not retried", async () => {
    handler = (_, res) => json(res, 202, { id: "job_1" });
    const err = await client({ maxRetries: 3, backoffMs: 2_000 })
      .jobs.submit({ type: "system.echo" }, { idempotencyKey: "bad\nkey" })
      .catch((e: unknown) => e);
    assert.ok(err instanceof TypeError && !(err instanceof OpsdeckConnectionError), String(err));
    assert.equal(peer.received.length, 0);
  });

  test("nobody listening: OpsdeckConnectionError after the retries", async () => {
    const opsdeck = new Opsdeck({ baseUrl: "http://127.0.0.1:9", keyId: KEY, secret: SECRET, backoffMs: 1, maxRetries: 1 });
    await assert.rejects(opsdeck.jobs.get("job_1"), OpsdeckConnectionError);
  });
});

describe("errors", () => {
  test("a problem document becomes the status's error class with its fields", async () => {
    handler = (_, res) =>
      json(res, 422, {
        type: "https://opsdeck.dev/problems/validation-failed",
        title: "Validation failed",
        status: 422,
        detail: "The request body has invalid fields.",
        errors: { type: ["Unknown job type."] },
      });
    const err = await client().jobs.submit({ type: "nope" }).catch((e: unknown) => e);
    assert.ok(err instanceof ValidationError);
    assert.equal(err.status, 422);
    assert.equal(err.type, "https://opsdeck.dev/problems/validation-failed");
    assert.deepEqual(err.errors, { type: ["Unknown job type."] });
  });

  test("request() can return an error answer instead of throwing it", async () => {
    handler = (_, res) => json(res, 404, { title: "Not found", status: 404 });
    const answer = await client().request("GET", "/api/v1/jobs/x", undefined, { throwOnError: false });
    assert.equal(answer.status, 404);
    assert.deepEqual(answer.body, { title: "Not found", status: 404 });
    await assert.rejects(client().request("GET", "/api/v1/jobs/x"), NotFoundError);
  });

  test("bytes come back as bytes", async () => {
    handler = (_, res) => {
      res.writeHead(200, { "Content-Type": "application/json" }); // a clean file that is JSON
      res.end('{"a": 1}');
    };
    const bytes = await client().scans.download("scn_1");
    assert.equal(Buffer.from(bytes).toString(), '{"a": 1}');
  });
});

test("an answer that is not a problem document still makes an error, with its text", async () => {
  handler = (_, res) => {
    res.writeHead(502, { "Content-Type": "text/html" });
    res.end("<h1>Bad gateway</h1>");
  };
  const err = await client({ maxRetries: 0 }).jobs.get("job_1").catch((e: unknown) => e);
  assert.ok(err instanceof ServerError);
  assert.equal(err.title, "HTTP 502");
  assert.equal(err.detail, "<h1>Bad gateway</h1>");
});

test("submitMany splits a long list by count and by size, in order, one key per call", async () => {
  handler = (request, res) => {
    const body = JSON.parse(request.body.toString("utf8")) as Record<string, { payload: { n: number } }[]>;
    const items = body.jobs ?? body.events ?? [];
    json(res, 202, { data: items.map((item) => ({ id: `job_${item.payload.n}`, replayed: false })) });
  };
  const jobs = Array.from({ length: 5 }, (_, n) => ({ type: "system.echo", payload: { n } }));
  const answers = await client().jobs.submitMany(jobs, { batchSize: 2, idempotencyKey: "import-7" });
  assert.deepEqual(answers.map((a) => a.id), ["job_0", "job_1", "job_2", "job_3", "job_4"]);
  assert.deepEqual(peer.received.map((r) => r.headers["idempotency-key"]), ["import-7.0", "import-7.1", "import-7.2"]);
  const big = Array.from({ length: 3 }, (_, n) => ({ type: "system.echo", payload: { n, pad: "x".repeat(600) } }));
  await client().events.publishMany(big.map((job) => ({ type: "t", payload: job.payload })), { batchBytes: 1000 });
  assert.equal(peer.received.length, 3, "one event a call: two would pass 1000 bytes");
});
