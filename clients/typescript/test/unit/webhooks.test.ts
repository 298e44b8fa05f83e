/** verifyWebhook beyond the vectors: header shapes, several secrets, what it must refuse. */
import assert from "node:assert/strict";
import { test } from "node:test";

import { verifyWebhook, WebhookVerificationError } from "../../src/index.js";
import { vectors } from "../helpers.js";

const rotation = vectors().webhooks.find((v) => v.name.includes("rotation") && v.valid)!;
const body = Buffer.from(rotation.body_base64, "base64");
const at = { now: rotation.now, tolerance: rotation.tolerance };
const other = "whsec_" + Buffer.from("not this endpoint's secret").toString("base64");

test("headers as fetch Headers, as Node gives them (any case), and the body as text", () => {
  const asHeaders = new Headers(rotation.headers);
  const shouting = Object.fromEntries(Object.entries(rotation.headers).map(([k, v]) => [k.toUpperCase(), v]));
  for (const headers of [asHeaders, shouting]) {
    assert.ok(verifyWebhook(rotation.secret, headers, body, at));
  }
  assert.ok(verifyWebhook(rotation.secret, rotation.headers, body.toString("utf8"), at));
});

test("several secrets: one that matches is enough; none is a refusal", () => {
  assert.ok(verifyWebhook([other, rotation.secret], rotation.headers, body, at));
  assert.throws(() => verifyWebhook([other], rotation.headers, body, at), WebhookVerificationError);
});

test("missing headers and a parsed body are refused", () => {
  const { "webhook-signature": _, ...unsigned } = rotation.headers;
  assert.throws(() => verifyWebhook(rotation.secret, unsigned, body, at), /missing/);
  const parsed = JSON.parse(body.toString("utf8"));
  assert.throws(() => verifyWebhook(rotation.secret, rotation.headers, parsed, at), TypeError);
});

test("the default tolerance is 300 seconds both ways, from the clock", () => {
  const stamp = Number(rotation.headers["webhook-timestamp"]);
  assert.ok(verifyWebhook(rotation.secret, rotation.headers, body, { now: stamp - 300 }));
  assert.ok(verifyWebhook(rotation.secret, rotation.headers, body, { now: stamp + 300 }));
  assert.throws(() => verifyWebhook(rotation.secret, rotation.headers, body, { now: stamp + 301 }), /tolerance/);
  assert.throws(() => verifyWebhook(rotation.secret, rotation.headers, body), /tolerance/); // now: years later
});
