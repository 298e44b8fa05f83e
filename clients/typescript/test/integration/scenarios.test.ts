/**
 * clients/SCENARIOS.md against a live Opsdeck (all but the rate limit's, which waits up to a
 * minute and runs in its own file, alongside these).
 */
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";

import { NotFoundError, ValidationError, verifyWebhook, WebhookVerificationError, type Job } from "../../src/index.js";
import { LIVE, liveClient, startPeer, unique, type Received } from "../helpers.js";

/** The standard 68-byte EICAR test file, in two halves so that this source is not itself flagged. */
const EICAR = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

async function until<T>(what: string, check: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("scenarios against a live Opsdeck", { skip: LIVE.skip }, () => {
  test("1. a job, submitted and awaited", async () => {
    const opsdeck = liveClient();
    const message = unique("echo");
    const job = await opsdeck.jobs.submit({ type: "system.echo", payload: { message } });
    const done = await opsdeck.jobs.wait(job.id, { timeoutMs: 30_000, intervalMs: 200 });
    assert.equal(done.status, "succeeded");
    assert.deepEqual(done.result, { message });
  });

  test("2. a retry with the same Idempotency-Key is answered as the first", async () => {
    const opsdeck = liveClient();
    const idempotencyKey = unique("order");
    const job = { type: "system.echo", payload: { message: idempotencyKey } };
    const first = await opsdeck.jobs.submit(job, { idempotencyKey });
    const second = await opsdeck.jobs.submit(job, { idempotencyKey });
    assert.equal(second.id, first.id);
    assert.equal(first.replayed, false);
    assert.equal(second.replayed, true);
    const raw = await opsdeck.request("POST", "/api/v1/jobs", job, { idempotencyKey });
    assert.equal(raw.headers.get("idempotent-replayed"), "true", "flagged by the header");
  });

  test("3. batches: three jobs, then the same three replayed; two events", async () => {
    const opsdeck = liveClient();
    const keys = [unique("a"), unique("b"), unique("c")];
    const jobs = keys.map((key) => ({ type: "system.echo", payload: { message: key }, idempotency_key: key }));
    const first = await opsdeck.jobs.submitMany(jobs);
    assert.deepEqual(first.map((j) => j.idempotency_key), keys, "in order");
    assert.ok(first.every((j) => j.replayed === false));
    const again = await opsdeck.jobs.submitMany(jobs);
    assert.deepEqual(again.map((j) => j.id), first.map((j) => j.id));
    assert.ok(again.every((j) => j.replayed === true));

    const type = unique("client.batch");
    const events = await opsdeck.events.publishMany([
      { type, payload: { n: 1 } },
      { type, payload: { n: 2 } },
    ]);
    assert.equal(events.length, 2);
    assert.deepEqual(events.map((e) => e.payload), [{ n: 1 }, { n: 2 }]);
  });

  test("4. the list's iterator: every job once, newest first, across pages", async () => {
    const opsdeck = liveClient();
    await opsdeck.jobs.submitMany(Array.from({ length: 5 }, (_, n) => ({ type: "system.echo", payload: { message: `page ${n}` } })));
    const before: string[] = [];
    for await (const job of opsdeck.jobs.iterate({ limit: 200 })) before.push(job.id);
    assert.ok(before.length >= 5);

    const seen: Job[] = [];
    let pages = 0;
    for await (const page of opsdeck.jobs.pages({ limit: 2 })) {
      pages += 1;
      assert.ok(page.data.length <= 2);
      seen.push(...page.data);
    }
    const ids = seen.map((job) => job.id);
    assert.equal(new Set(ids).size, ids.length, "no job twice");
    assert.ok(before.every((id) => ids.includes(id)), "every job listed before is seen");
    assert.ok(pages >= 3, `${pages} pages`);
    for (let n = 1; n < seen.length; n++) {
      assert.ok(seen[n - 1]!.created_at >= seen[n]!.created_at, "newest first");
    }
    let counted = 0;
    for await (const job of opsdeck.jobs.iterate({ limit: 2 })) counted += ids.includes(job.id) ? 1 : 0;
    assert.ok(counted >= before.length);
  });

  test("5. cancel and retry", async () => {
    const opsdeck = liveClient();
    const job = await opsdeck.jobs.submit({ type: "system.echo", payload: {}, delay_seconds: 3600 });
    assert.equal((await opsdeck.jobs.cancel(job.id)).status, "cancelled");
    assert.ok(["pending", "queued"].includes((await opsdeck.jobs.retry(job.id)).status));
  });

  test("6. scans: EICAR as bytes is infected, a clean file from a path is served back", async () => {
    const opsdeck = liveClient();
    const eicar = Buffer.from(EICAR, "ascii");
    assert.equal(eicar.length, 68);
    const clean = Buffer.from(`nothing to see here: ${unique("clean")}\n`);
    const path = join(await mkdtemp(join(tmpdir(), "opsdeck-ts-")), "notes.txt");
    await writeFile(path, clean);

    const [infectedScan, cleanScan] = await Promise.all([
      opsdeck.scans.upload(eicar, { filename: "eicar.txt" }),
      opsdeck.scans.upload(path),
    ]);
    assert.equal(cleanScan.name, "notes.txt");
    const [infected, verdict] = await Promise.all([
      opsdeck.scans.waitForVerdict(infectedScan.id, { timeoutMs: 60_000 }),
      opsdeck.scans.waitForVerdict(cleanScan.id, { timeoutMs: 60_000 }),
    ]);
    assert.equal(infected.status, "infected");
    assert.match(infected.signature ?? "", /eicar/i);
    assert.equal(verdict.status, "clean");
    assert.deepEqual(Buffer.from(await opsdeck.scans.download(cleanScan.id)), clean);

    const chunks: Uint8Array[] = [];
    for await (const chunk of await opsdeck.scans.downloadStream(cleanScan.id)) chunks.push(chunk);
    assert.deepEqual(Buffer.concat(chunks), clean);
  });

  test("7. webhooks, received and verified, through a secret rotation", async () => {
    const opsdeck = liveClient();
    const peer = await startPeer((_, res) => res.writeHead(204).end());
    const type = unique("client.ts");
    try {
      const endpoint = await opsdeck.webhookEndpoints.create({ url: `${peer.url}/hooks`, event_types: [type] });
      assert.match(endpoint.secret, /^whsec_/);
      const delivered = (id: string) => () => peer.received.find((r: Received) => r.headers["webhook-id"] === id);

      const event = await opsdeck.events.publish({ type, payload: { order: 1 } });
      const first = await until("the first delivery", delivered(event.id));
      assert.equal(first.url, "/hooks");
      const payload = verifyWebhook(endpoint.secret, first.headers, first.body);
      assert.equal(payload.type, type);
      assert.deepEqual(payload.data, { order: 1 });
      const another = "whsec_" + Buffer.from(unique("another")).toString("base64");
      assert.throws(() => verifyWebhook(another, first.headers, first.body), WebhookVerificationError);
      const changed = Buffer.from(first.body.toString("utf8").replace('"order":1', '"order":2'));
      assert.notDeepEqual(changed, first.body);
      assert.throws(() => verifyWebhook(endpoint.secret, first.headers, changed), WebhookVerificationError);

      const rotated = await opsdeck.webhookEndpoints.rotateSecret(endpoint.id);
      assert.notEqual(rotated.secret, endpoint.secret);
      const next = await opsdeck.events.publish({ type, payload: { order: 2 } });
      const second = await until("the delivery after the rotation", delivered(next.id));
      assert.equal(String(second.headers["webhook-signature"]).split(" ").length, 2);
      assert.deepEqual(verifyWebhook(rotated.secret, second.headers, second.body).data, { order: 2 });
      assert.deepEqual(verifyWebhook(endpoint.secret, second.headers, second.body).data, { order: 2 });

      const deliveries = await opsdeck.webhookEndpoints.listDeliveries(endpoint.id);
      assert.ok(deliveries.data.some((d) => d.event_id === event.id));
      await opsdeck.webhookEndpoints.delete(endpoint.id);
      await assert.rejects(opsdeck.webhookEndpoints.get(endpoint.id), NotFoundError);
    } finally {
      await peer.close();
    }
  });

  test("8. errors as values: 422 with field errors, 404", async () => {
    const opsdeck = liveClient();
    const invalid = await opsdeck.jobs.submit({ type: "no.such.type", payload: {} }).catch((e: unknown) => e);
    assert.ok(invalid instanceof ValidationError, String(invalid));
    assert.equal(invalid.status, 422);
    assert.ok(invalid.errors && "type" in invalid.errors, JSON.stringify(invalid.errors));
    const missing = await opsdeck.jobs.get("job_does_not_exist").catch((e: unknown) => e);
    assert.ok(missing instanceof NotFoundError, String(missing));
    assert.equal(missing.status, 404);
    for (const err of [invalid, missing]) {
      assert.ok(err.type && err.title && err.detail, `type, title and detail: ${JSON.stringify(err.problem)}`);
    }
  });

  test("10. the generic call answers the OpenAPI document", async () => {
    const answer = await liveClient().request<{ openapi: string; paths: object }>("GET", "/api/v1/openapi.json");
    assert.equal(answer.status, 200);
    assert.ok(answer.body.openapi.startsWith("3."), answer.body.openapi);
  });
});
