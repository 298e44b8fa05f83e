/**
 * multipart/form-data built by hand: the request is signed over its exact body bytes, so the
 * body must exist as bytes before it is sent (a FormData object is only encoded by fetch, with a
 * boundary of its own choosing).
 */
import { randomBytes } from "node:crypto";

export interface FilePart {
  /** The form field's name. */
  field: string;
  filename: string;
  data: Uint8Array;
  contentType?: string;
}

/** A boundary that cannot plausibly occur in a file: 24 random bytes in hex. */
export function newBoundary(): string {
  return "opsdeck-" + randomBytes(24).toString("hex");
}

/** The body bytes and Content-Type of a multipart/form-data request carrying `parts`. */
export function encodeMultipart(
  parts: FilePart[],
  boundary: string = newBoundary(),
): { bytes: Uint8Array; contentType: string } {
  const chunks: Uint8Array[] = [];
  for (const part of parts) {
    const head =
      `--${boundary}\r\n` +
      `Content-Disposition: form-data; name="${quote(part.field)}"; filename="${quote(part.filename)}"\r\n` +
      `Content-Type: ${part.contentType ?? "application/octet-stream"}\r\n\r\n`;
    chunks.push(Buffer.from(head, "utf8"), part.data, Buffer.from("\r\n", "utf8"));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`, "utf8"));
  return { bytes: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** A header parameter value as browsers write it (HTML's form encoding): ", CR and LF escaped. */
function quote(value: string): string {
  return value.replace(/"/g, "%22").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
}
