/**
 * Sending one API call: sign it, send it, and try again when that is safe.
 *
 * Safe means: a read can always be sent again, and every write carries an Idempotency-Key that
 * stays the same across its tries, so the server answers a repeat with the first outcome instead
 * of doing the work twice. Each try is signed afresh, because a signature's timestamp is only
 * accepted for 300 seconds and a write with the same signature would be a replay of the first.
 */
import { randomUUID } from "node:crypto";

import { OpsdeckConnectionError, parseRetryAfter } from "./errors.js";
import { signedHeaders } from "./signing.js";

export interface TransportOptions {
  /** The server, e.g. https://opsdeck.example (a path prefix is kept). */
  baseUrl: string;
  keyId: string;
  secret: string;
  /** Tries after the first for connection errors, timeouts, 429 and 5xx but 501 (0: no retries). Default 3. */
  maxRetries?: number;
  /** Time allowed for one try, from sending to the whole answer read. Default 30 000 ms. */
  timeoutMs?: number;
  /** First backoff before a retry; it doubles each try, with jitter. Default 500 ms. */
  backoffMs?: number;
  /** The longest backoff between two tries. Default 10 000 ms. */
  maxBackoffMs?: number;
  /**
   * The longest `Retry-After` honoured by waiting; past it the 429 or 503 is thrown at once.
   * Default 65 000 ms: the server's rate-limit window is a minute.
   */
  maxRetryAfterMs?: number;
  /** The fetch to use (tests, proxies). Default: the global fetch. */
  fetch?: typeof fetch;
  userAgent?: string;
}

export interface RequestOptions {
  /** The write's Idempotency-Key; one is generated per call when not given. */
  idempotencyKey?: string;
  /** Query parameters to add (undefined and null values are left out). */
  query?: Record<string, string | number | boolean | undefined | null>;
  headers?: Record<string, string>;
  timeoutMs?: number;
  maxRetries?: number;
  /** Cancels the call, waits between tries included. */
  signal?: AbortSignal;
}

/** A request body as the bytes that are signed and sent. */
export interface RawBody {
  bytes: Uint8Array;
  contentType?: string;
}

export interface Answer<B> {
  status: number;
  headers: Headers;
  body: B;
}

const WRITES = new Set(["POST", "PUT", "PATCH", "DELETE"]);
export const VERSION = "0.1.0";

export class Transport {
  readonly baseUrl: string;
  private readonly keyId: string;
  private readonly secret: string;
  private readonly maxRetries: number;
  private readonly timeoutMs: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly fetch: typeof fetch;
  private readonly userAgent: string;

  constructor(options: TransportOptions) {
    if (!options.baseUrl || !options.keyId || !options.secret) {
      throw new TypeError("baseUrl, keyId and secret are required");
    }
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.keyId = options.keyId;
    this.secret = options.secret;
    this.maxRetries = options.maxRetries ?? 3;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.backoffMs = options.backoffMs ?? 500;
    this.maxBackoffMs = options.maxBackoffMs ?? 10_000;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 65_000;
    this.fetch = options.fetch ?? globalThis.fetch;
    this.userAgent = options.userAgent ?? `opsdeck-client-typescript/${VERSION} node/${process.versions.node}`;
  }

  /** The URL a path is sent to, with `query` added. */
  url(path: string, query?: RequestOptions["query"]): URL {
    const url = new URL(this.baseUrl + (path.startsWith("/") ? path : "/" + path));
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.append(name, String(value));
    }
    return url;
  }

  /** Send with retries; the answer (whatever its status) with its body read whole. */
  async send(method: string, path: string, body?: RawBody, options: RequestOptions = {}): Promise<Answer<Uint8Array>> {
    const answer = await this.exchange(method, path, body, options, false);
    return answer as Answer<Uint8Array>;
  }

  /**
   * GET with retries; a successful answer's body as a stream (the timeout covers the wait for
   * the headers), an error's read whole.
   */
  async stream(path: string, options: RequestOptions = {}): Promise<Answer<ReadableStream<Uint8Array> | Uint8Array>> {
    return this.exchange("GET", path, undefined, options, true);
  }

  private async exchange(
    method: string,
    path: string,
    body: RawBody | undefined,
    options: RequestOptions,
    streaming: boolean,
  ): Promise<Answer<Uint8Array | ReadableStream<Uint8Array>>> {
    method = method.toUpperCase();
    const url = this.url(path, options.query);
    // Signed as fetch will send it: the WHATWG URL's serialisation of the path and query.
    const target = url.pathname + url.search;
    const bytes = body?.bytes ?? new Uint8Array(0);
    const idempotencyKey = WRITES.has(method) ? (options.idempotencyKey ?? randomUUID()) : undefined;
    const attempts = 1 + (options.maxRetries ?? this.maxRetries);

    for (let attempt = 1; ; attempt++) {
      const headers: Record<string, string> = {
        Accept: "application/json, application/problem+json, */*",
        "User-Agent": this.userAgent,
        ...options.headers,
        ...signedHeaders(this.keyId, this.secret, method, target, bytes),
      };
      if (idempotencyKey !== undefined) headers["Idempotency-Key"] = idempotencyKey;
      if (body?.contentType) headers["Content-Type"] = body.contentType;

      const deadline = linkedSignal(options.timeoutMs ?? this.timeoutMs, options.signal);
      let answer: Answer<Uint8Array | ReadableStream<Uint8Array>>;
      let streamed = false;
      try {
        const response = await this.fetch(url, {
          method,
          headers,
          body: bytes.length > 0 || WRITES.has(method) ? bytes : undefined,
          signal: deadline.signal,
          redirect: "manual", // a redirect would be sent unsigned for its new target
        });
        const failed = response.status >= 400;
        if (streaming && !failed && response.body) {
          // The caller reads at its own pace: no timeout from here on, but its signal still cancels.
          deadline.stopTimer();
          streamed = true;
          return { status: response.status, headers: response.headers, body: response.body };
        }
        const read = new Uint8Array(await response.arrayBuffer());
        answer = { status: response.status, headers: response.headers, body: read };
      } catch (err) {
        if (options.signal?.aborted) throw options.signal.reason ?? err;
        // A request fetch refused to send (a bad header value or URL) fails the same way every time.
        if (!deadline.timedOut && !isNetworkError(err)) throw err;
        // No answer (refused, reset, timed out): the same Idempotency-Key makes a resend safe.
        if (attempt >= attempts) {
          const why = deadline.timedOut ? `timed out after ${options.timeoutMs ?? this.timeoutMs} ms` : describe(err);
          throw new OpsdeckConnectionError(`${method} ${target}: ${why} (${attempt} tries)`, { cause: err });
        }
        await sleep(this.backoff(attempt), options.signal);
        continue;
      } finally {
        if (!streamed) deadline.clear();
      }

      const wait = this.retryDelay(answer, attempt, attempts);
      if (wait === undefined) return answer;
      await sleep(wait, options.signal);
    }
  }

  /** How long to wait before trying again after `answer`, or undefined to stop here. */
  private retryDelay(answer: Answer<unknown>, attempt: number, attempts: number): number | undefined {
    if (!retryable(answer.status) || attempt >= attempts) return undefined;
    const retryAfter = parseRetryAfter(answer.headers.get("retry-after"));
    if (retryAfter === undefined) return this.backoff(attempt);
    if (retryAfter * 1000 > this.maxRetryAfterMs) return undefined;
    // A little jitter past the window's end, so that clients told the same second do not all
    // come back in the same instant.
    return retryAfter * 1000 + Math.random() * 250;
  }

  /** Exponential backoff with jitter: half the step fixed, half random. */
  private backoff(attempt: number): number {
    const step = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** (attempt - 1));
    return step / 2 + (Math.random() * step) / 2;
  }
}

/** 429 and 5xx, except 501 Not Implemented: a permanent answer, the same at every try. */
function retryable(status: number): boolean {
  return status === 429 || (status >= 500 && status !== 501);
}

/** An answer's body decoded: JSON for a JSON content type, null when empty, else the bytes. */
export function decode(headers: Headers, bytes: Uint8Array): unknown {
  if (bytes.length === 0) return null;
  const type = headers.get("content-type") ?? "";
  if (!/[/+]json\b/i.test(type)) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = Buffer.from(bytes).toString("utf8");
  try {
    return JSON.parse(text);
  } catch {
    return text; // e.g. a proxy's error page mislabelled as JSON
  }
}

/** A signal that aborts after `timeoutMs` or when `outer` aborts (AbortSignal.any needs Node 20). */
function linkedSignal(timeoutMs: number, outer?: AbortSignal) {
  const controller = new AbortController();
  const state = { timedOut: false };
  const timer = setTimeout(() => {
    state.timedOut = true;
    controller.abort(new Error(`timed out after ${timeoutMs} ms`));
  }, timeoutMs);
  const onAbort = () => controller.abort(outer?.reason);
  if (outer?.aborted) onAbort();
  outer?.addEventListener("abort", onAbort, { once: true });
  return {
    signal: controller.signal,
    get timedOut() {
      return state.timedOut;
    },
    stopTimer() {
      clearTimeout(timer);
    },
    clear() {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onAbort);
    },
  };
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
  }
  return String(err);
}

/** fetch's "no answer" (refused, reset, DNS, TLS): a TypeError whose cause says why, or a
 * socket error of its own; anything else is a request it would refuse again. */
function isNetworkError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === "AbortError" || err.name === "TimeoutError") return true;
  const code = (err as { code?: unknown }).code;
  return (err instanceof TypeError && err.cause !== undefined) || typeof code === "string";
}
