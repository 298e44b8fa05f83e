/** /api/v1/scans: upload a file, read and list verdicts, download a clean file. */
import { readFile } from "node:fs/promises";
import { basename } from "node:path";

import type { Opsdeck } from "../client.js";
import { errorFor } from "../errors.js";
import { encodeMultipart } from "../multipart.js";
import { items } from "../pagination.js";
import { decode, type Answer, type RequestOptions } from "../transport.js";
import type { Page, Scan, ScanListParams } from "../types.js";
import { poll, type WaitOptions } from "../waiting.js";
import { segment } from "./paths.js";

export interface UploadOptions extends RequestOptions {
  /** The file's name (its extension is checked). Default: the path's base name, or "upload.bin". */
  filename?: string;
  contentType?: string;
}

export class Scans {
  constructor(private readonly client: Opsdeck) {}

  /**
   * Upload a file to be scanned: a path on disk, or its bytes. A file the pre-checks refuse
   * (size, type, extension) is a ValidationError whose `problem.scan_id` names its record.
   */
  async upload(file: string | Uint8Array, options: UploadOptions = {}): Promise<Scan> {
    const { filename, contentType, ...rest } = options;
    const data = typeof file === "string" ? await readFile(file) : file;
    const name = filename ?? (typeof file === "string" ? basename(file) : "upload.bin");
    // One encoding for every try: the retries resend, and re-sign, these very bytes.
    const body = encodeMultipart([{ field: "file", filename: name, data, contentType }]);
    return (await this.client.send<Scan>("POST", "/api/v1/scans", body, rest)).body;
  }

  async get(id: string, options?: RequestOptions): Promise<Scan> {
    return (await this.client.request<Scan>("GET", `/api/v1/scans/${segment(id)}`, undefined, options)).body;
  }

  /** One page, newest first. */
  async list(params: ScanListParams = {}, options?: RequestOptions): Promise<Page<Scan>> {
    const query = { ...params };
    return (await this.client.request<Page<Scan>>("GET", "/api/v1/scans", undefined, { ...options, query })).body;
  }

  iterate(params: ScanListParams = {}, options?: RequestOptions): AsyncGenerator<Scan, void, undefined> {
    return items((p) => this.list(p, options), params);
  }

  /** The scan once it has a verdict (clean, infected, rejected or error). */
  waitForVerdict(id: string, options?: WaitOptions): Promise<Scan> {
    const read = () => this.get(id, { signal: options?.signal });
    return poll(`scan ${id}`, read, (scan) => scan.status !== "pending", options);
  }

  /**
   * A clean file's bytes, whatever its content type (ConflictError until clamd found it clean,
   * and for any other verdict).
   */
  async download(id: string, options?: RequestOptions): Promise<Uint8Array> {
    const answer = await this.client.transport.send("GET", `/api/v1/scans/${segment(id)}/file`, undefined, options);
    return refuseErrors(answer);
  }

  /** A clean file as a stream, for files too large to hold in memory. */
  async downloadStream(id: string, options?: RequestOptions): Promise<ReadableStream<Uint8Array>> {
    const answer = await this.client.transport.stream(`/api/v1/scans/${segment(id)}/file`, options);
    if (answer.body instanceof Uint8Array) {
      const bytes = refuseErrors({ ...answer, body: answer.body });
      return new ReadableStream({
        start(controller) {
          if (bytes.length > 0) controller.enqueue(bytes);
          controller.close();
        },
      });
    }
    return answer.body;
  }
}

/** The answer's bytes, or its OpsdeckError thrown. */
function refuseErrors(answer: Answer<Uint8Array>): Uint8Array {
  if (answer.status >= 400) throw errorFor(answer.status, answer.headers, decode(answer.headers, answer.body));
  return answer.body;
}
