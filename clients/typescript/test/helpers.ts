/** What the test files share: where things are, the live server's settings, a local HTTP peer. */
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { Opsdeck, type OpsdeckOptions } from "../src/index.js";

/** clients/typescript/ (this file runs as dist/test/helpers.js). */
export const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface Vectors {
  requests: {
    name: string;
    secret: string;
    timestamp: number;
    method: string;
    path: string;
    body_base64: string;
    content_type?: string;
    signature: string;
  }[];
  webhooks: {
    name: string;
    secret: string;
    headers: Record<string, string>;
    body_base64: string;
    now: number;
    tolerance: number;
    valid: boolean;
  }[];
}

/** clients/test-vectors.json, read at run time: the one copy every client and the server test. */
export function vectors(): Vectors {
  return JSON.parse(readFileSync(join(PACKAGE_ROOT, "..", "test-vectors.json"), "utf8"));
}

// -- the live server ----------------------------------------------------------------------------
const VARIABLES = [
  "OPSDECK_URL",
  "OPSDECK_KEY_ID",
  "OPSDECK_SECRET",
  "OPSDECK_LIMITED_URL",
  "OPSDECK_LIMITED_KEY_ID",
  "OPSDECK_LIMITED_SECRET",
  "OPSDECK_LIMIT",
] as const;

/**
 * For `test(name, { skip: LIVE.skip }, …)`: the integration tests run when
 * OPSDECK_CLIENT_INTEGRATION=1 (and then fail, never skip, on a missing variable).
 */
export const LIVE = {
  skip:
    process.env.OPSDECK_CLIENT_INTEGRATION === "1" ? false : "set OPSDECK_CLIENT_INTEGRATION=1 to run against a live Opsdeck",
};

/** The OPSDECK_* variables; throws naming the missing ones. */
export function liveEnv(): Record<(typeof VARIABLES)[number], string> {
  const missing = VARIABLES.filter((name) => !process.env[name]);
  if (missing.length > 0) throw new Error(`OPSDECK_CLIENT_INTEGRATION=1 but ${missing.join(", ")} not set`);
  return Object.fromEntries(VARIABLES.map((name) => [name, process.env[name] as string])) as Record<
    (typeof VARIABLES)[number],
    string
  >;
}

/** A client of the live server's main tenant. */
export function liveClient(options: Partial<OpsdeckOptions> = {}): Opsdeck {
  const env = liveEnv();
  return new Opsdeck({ baseUrl: env.OPSDECK_URL, keyId: env.OPSDECK_KEY_ID, secret: env.OPSDECK_SECRET, ...options });
}

/** Text no other run has used. */
export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

// -- a local HTTP peer ----------------------------------------------------------------------------
export interface Received {
  method: string;
  /** The request target exactly as it arrived. */
  url: string;
  headers: IncomingMessage["headers"];
  body: Buffer;
}

export type Handler = (request: Received, response: ServerResponse, index: number) => void;

export interface Peer {
  url: string;
  received: Received[];
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 (a free port) answering with `handler`, keeping what it got. */
export async function startPeer(handler: Handler): Promise<Peer> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const request = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks) };
      received.push(request);
      handler(request, res, received.length - 1);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const type = status >= 400 ? "application/problem+json" : "application/json";
  res.writeHead(status, { "Content-Type": type, ...headers });
  res.end(JSON.stringify(body));
}
