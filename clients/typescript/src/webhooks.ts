/**
 * Verifying the webhooks Opsdeck sends (Standard Webhooks):
 *
 *     webhook-id:        the event's id
 *     webhook-timestamp: unix seconds of the send
 *     webhook-signature: "v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}." + body)>", space-separated,
 *                        one per secret that signs (two during a secret rotation)
 *
 * where the key is the base64-decoded endpoint secret without its "whsec_" prefix. Verify the
 * raw body bytes as received: a body parsed and serialised again is not the body that was signed.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

import { WebhookVerificationError } from "./errors.js";
import type { WebhookPayload } from "./types.js";

/** Headers as Node's http module, Express, or fetch give them. */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

export interface VerifyOptions {
  /** Seconds the timestamp may be from now, both ways. Default 300. */
  tolerance?: number;
  /** The time to check against, unix seconds. Default: now. */
  now?: number;
}

const SECRET_PREFIX = "whsec_";

/**
 * The webhook's JSON payload, once one signature in the header matches one of `secrets` and its
 * timestamp is within the tolerance. Throws WebhookVerificationError otherwise.
 *
 * Pass the endpoint's secret, or several (the new and the old while you roll a rotation out).
 */
export function verifyWebhook<T = WebhookPayload>(
  secrets: string | string[],
  headers: WebhookHeaders,
  body: Uint8Array | string,
  options: VerifyOptions = {},
): T {
  if (typeof body !== "string" && !(body instanceof Uint8Array)) {
    throw new TypeError("verifyWebhook needs the raw body (a string or bytes), not a parsed object");
  }
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !timestamp || !signatures) {
    throw new WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header");
  }
  if (!/^\d+$/.test(timestamp)) throw new WebhookVerificationError("malformed webhook-timestamp");
  const tolerance = options.tolerance ?? 300;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - Number(timestamp)) > tolerance) {
    throw new WebhookVerificationError("webhook-timestamp is outside the tolerance (a replay, or a clock off)");
  }

  const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  const offered = signatures
    .split(" ")
    .filter((value) => value.startsWith("v1,"))
    .map((value) => Buffer.from(value.slice(3), "base64"));
  const matched = (Array.isArray(secrets) ? secrets : [secrets]).some((secret) => {
    const expected = createHmac("sha256", secretKey(secret)).update(`${id}.${timestamp}.`).update(bytes).digest();
    // Every value is compared, in constant time each, so the time taken says nothing about which matched.
    return offered.map((given) => given.length === expected.length && timingSafeEqual(given, expected)).includes(true);
  });
  if (!matched) throw new WebhookVerificationError("no signature matches");

  try {
    return JSON.parse(Buffer.from(bytes).toString("utf8")) as T;
  } catch {
    throw new WebhookVerificationError("the signed body is not JSON");
  }
}

function secretKey(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  const key = Buffer.from(encoded, "base64");
  if (key.length === 0) throw new TypeError("the webhook secret is empty or not base64 (whsec_…)");
  return key;
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  return Array.isArray(value) ? value.join(" ") : value;
}
