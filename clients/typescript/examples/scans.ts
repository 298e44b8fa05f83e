import { createWriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";

import { Opsdeck } from "@opsdeck/client";

const opsdeck = new Opsdeck({ baseUrl: process.env.OPSDECK_URL!, keyId: process.env.OPSDECK_KEY_ID!, secret: process.env.OPSDECK_SECRET! });

// A path on disk (scans.upload("./orders.csv")), or bytes with a file name.
const scan = await opsdeck.scans.upload(Buffer.from("order,total\n1234,1200.00\n"), { filename: "orders.csv" });
const verdict = await opsdeck.scans.waitForVerdict(scan.id, { timeoutMs: 60_000 });
console.log(verdict.status, verdict.signature); // clean null (or: infected Eicar-Test-Signature)

if (verdict.status === "clean") {
  const bytes = await opsdeck.scans.download(scan.id); // small files: the bytes
  const stream = await opsdeck.scans.downloadStream(scan.id); // large ones: a stream
  await pipeline(Readable.fromWeb(stream as NodeReadableStream), createWriteStream(join(tmpdir(), "orders.csv")));
  console.log(`${bytes.length} bytes`);
}
