/** The README's examples (examples/*.ts, compiled to dist/examples/) run against the live server. */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";

import { LIVE, liveClient, liveEnv, PACKAGE_ROOT, unique } from "../helpers.js";

const EXAMPLES = join(PACKAGE_ROOT, "dist", "examples");

/** Runs an example to its end; its output, or a failure with its stderr. */
function run(name: string, env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(EXAMPLES, name)], { env: { ...process.env, ...liveEnv(), ...env } });
    let out = "";
    let err = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`${name} exited ${code}:\n${err}`))));
  });
}

describe("the README's examples against a live Opsdeck", { skip: LIVE.skip }, () => {
  test("first call: the echo's result", async () => {
    assert.match(await run("first-call.js"), /message: 'hello'/);
  });

  test("request: the OpenAPI document", async () => {
    assert.match(await run("request.js"), /^200 3\./);
  });

  test("errors: a 422 with field errors, a 404", async () => {
    const out = await run("errors.js");
    assert.match(out, /^422 Validation failed \{ type: \[/m);
    assert.match(out, /^404 No such job\./m);
  });

  test("retries: the same Idempotency-Key twice is one job, replayed", async () => {
    assert.equal((await run("retries.js")).trim(), "true true");
  });

  test("listing: the iterator counts", async () => {
    assert.match(await run("listing.js"), /^\d+ echo jobs succeeded$/m);
  });

  test("scans: a clean upload, downloaded both ways", async () => {
    assert.match(await run("scans.js"), /^clean null\n25 bytes$/m);
  });

  test("webhook receiver: a real delivery verified, a forged one refused", async () => {
    const port = await freePort();
    const type = unique("readme.example");
    const opsdeck = liveClient();
    const endpoint = await opsdeck.webhookEndpoints.create({ url: `http://127.0.0.1:${port}/hooks`, event_types: [type] });
    const child = spawn(process.execPath, [join(EXAMPLES, "webhook-receiver.js")], {
      env: { ...process.env, OPSDECK_WEBHOOK_SECRET: endpoint.secret, PORT: String(port) },
    });
    try {
      let out = "";
      child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
      await waitFor(() => out.includes("listening"), child);

      const forged = await fetch(`http://127.0.0.1:${port}/hooks`, {
        method: "POST",
        headers: { "webhook-id": "evt_x", "webhook-timestamp": String(Math.floor(Date.now() / 1000)), "webhook-signature": "v1,AAAA" },
        body: "{}",
      });
      assert.equal(forged.status, 400);

      await opsdeck.events.publish({ type, payload: { order: 7 } });
      await waitFor(() => out.includes(`received ${type} {"order":7}`), child);
    } finally {
      child.kill();
      await opsdeck.webhookEndpoints.delete(endpoint.id);
    }
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function waitFor(done: () => boolean, child: ChildProcess, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!done()) {
    if (child.exitCode !== null) throw new Error(`the example exited ${child.exitCode}`);
    if (Date.now() > end) throw new Error("gave up waiting for the example");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
