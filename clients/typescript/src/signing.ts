/**
 * Request signing for the Opsdeck API.
 *
 *     Opsdeck-Key:       <key id>
 *     Opsdeck-Timestamp: <unix seconds>
 *     Opsdeck-Signature: v1=<lowercase hex HMAC-SHA256(secret, "{timestamp}.{METHOD}.{path with query}." + body)>
 *
 * The path with query is the request target exactly as it goes on the wire (percent-encoding
 * kept), and the body is the exact bytes sent: a body must never be serialised again after it
 * was signed.
 */
import { createHmac } from "node:crypto";

/** `v1=` + lowercase hex HMAC-SHA256 over "{timestamp}.{METHOD}.{pathWithQuery}." + body. */
export function sign(
  secret: string,
  timestamp: number | string,
  method: string,
  pathWithQuery: string,
  body: Uint8Array | string = "",
): string {
  const hmac = createHmac("sha256", secret);
  hmac.update(`${timestamp}.${method.toUpperCase()}.${pathWithQuery}.`, "utf8");
  hmac.update(typeof body === "string" ? Buffer.from(body, "utf8") : body);
  return "v1=" + hmac.digest("hex");
}

/** The three signature headers for one try of a request (each retry is signed afresh). */
export function signedHeaders(
  keyId: string,
  secret: string,
  method: string,
  pathWithQuery: string,
  body: Uint8Array | string = "",
  timestamp: number = Math.floor(Date.now() / 1000),
): Record<string, string> {
  return {
    "Opsdeck-Key": keyId,
    "Opsdeck-Timestamp": String(timestamp),
    "Opsdeck-Signature": sign(secret, timestamp, method, pathWithQuery, body),
  };
}
