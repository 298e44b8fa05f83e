/**
 * The bulk calls (POST /jobs/batch, /events/batch) take 1 to 1,000 items in a body of at most
 * 5 MiB. A longer list is sent in several calls, split by count and by encoded size.
 */
import type { Opsdeck } from "../client.js";
import type { RequestOptions } from "../transport.js";

export interface BatchOptions extends RequestOptions {
  /** Most items a call. Default 1000 (the server's API_BATCH_MAX_ITEMS). */
  batchSize?: number;
  /** About the most bytes of JSON a call. Default 4 MiB (under API_BATCH_MAX_BYTES, 5 MiB). */
  batchBytes?: number;
}

/**
 * Each item's answer, in order. With `idempotencyKey`, the n-th call is sent with
 * "{key}.{n}", so the same list sent again with the same key replays each call.
 */
export async function inBatches<I, A>(
  client: Opsdeck,
  path: string,
  field: string,
  items: I[],
  options: BatchOptions = {},
): Promise<A[]> {
  const { batchSize = 1000, batchBytes = 4 << 20, idempotencyKey, ...rest } = options;
  const answers: A[] = [];
  let call = 0;
  for (const batch of split(items, batchSize, batchBytes)) {
    const key = idempotencyKey === undefined ? undefined : `${idempotencyKey}.${call}`;
    const options = { ...rest, idempotencyKey: key };
    const { body } = await client.request<{ data: A[] }>("POST", path, { [field]: batch }, options);
    answers.push(...body.data);
    call += 1;
  }
  return answers;
}

function* split<I>(items: I[], size: number, maxBytes: number): Generator<I[]> {
  let batch: I[] = [];
  let used = 0;
  for (const item of items) {
    const length = Buffer.byteLength(JSON.stringify(item), "utf8") + 1; // and its comma
    if (batch.length > 0 && (batch.length === size || used + length > maxBytes)) {
      yield batch;
      batch = [];
      used = 0;
    }
    batch.push(item);
    used += length;
  }
  if (batch.length > 0) yield batch;
}
