/** Polling until a resource gets somewhere (a job finishes, a scan has its verdict). */
import { WaitTimeoutError } from "./errors.js";
import { sleep } from "./transport.js";

export interface WaitOptions {
  /** Give up after this long (WaitTimeoutError). Default 60 000 ms. */
  timeoutMs?: number;
  /** Time between two reads. Default 500 ms. */
  intervalMs?: number;
  signal?: AbortSignal;
}

/** Reads with `read` until `done` says yes; the last value read. */
export async function poll<T>(
  what: string,
  read: () => Promise<T>,
  done: (value: T) => boolean,
  options: WaitOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    const left = until - Date.now();
    if (left <= 0) throw new WaitTimeoutError(`${what}: still waiting after ${timeoutMs} ms`);
    await sleep(Math.min(options.intervalMs ?? 500, left), options.signal);
  }
}
