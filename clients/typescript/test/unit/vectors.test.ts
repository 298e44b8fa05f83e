/** Every vector in clients/test-vectors.json: request signatures, and webhooks verified or refused. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { encodeMultipart, sign, verifyWebhook, WebhookVerificationError } from "../../src/index.js";
import { vectors } from "../helpers.js";

const { requests, webhooks } = vectors();

describe("request signatures", () => {
  test("the file has vectors", () => assert.ok(requests.length >= 5 && webhooks.length >= 9));

  for (const vector of requests) {
    test(vector.name, () => {
      const body = Buffer.from(vector.body_base64, "base64");
      assert.equal(sign(vector.secret, vector.timestamp, vector.method, vector.path, body), vector.signature);
    });
  }

  test("the multipart encoder writes the multipart vector's bytes, boundary given", () => {
    const vector = requests.find((v) => v.content_type?.startsWith("multipart/form-data"));
    assert.ok(vector, "a multipart vector");
    const body = Buffer.from(vector.body_base64, "base64");
    const boundary = vector.content_type!.split("boundary=")[1]!;
    const start = body.indexOf("\r\n\r\n") + 4;
    const end = body.lastIndexOf(`\r\n--${boundary}--`);
    const name = /filename="([^"]+)"/.exec(body.toString("latin1"))![1]!;
    const encoded = encodeMultipart([{ field: "file", filename: name, data: body.subarray(start, end) }], boundary);
    assert.equal(encoded.contentType, vector.content_type);
    assert.deepEqual(Buffer.from(encoded.bytes), body);
    assert.equal(sign(vector.secret, vector.timestamp, vector.method, vector.path, encoded.bytes), vector.signature);
  });
});

describe("webhook verification", () => {
  for (const vector of webhooks) {
    test(`${vector.name}: ${vector.valid ? "accepted" : "refused"}`, () => {
      const body = Buffer.from(vector.body_base64, "base64");
      const verify = () =>
        verifyWebhook(vector.secret, vector.headers, body, { now: vector.now, tolerance: vector.tolerance });
      if (vector.valid) {
        assert.deepEqual(verify(), JSON.parse(body.toString("utf8")));
      } else {
        assert.throws(verify, WebhookVerificationError);
      }
    });
  }
});
