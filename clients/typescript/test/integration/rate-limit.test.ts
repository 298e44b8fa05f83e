/**
 * Scenario 9: on a web process allowing OPSDECK_LIMIT requests a minute, a read past the limit
 * is a RateLimitError with retries off, and succeeds after the server's Retry-After with them on.
 * In its own file so that its wait (up to a minute) overlaps the other scenarios.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import { Opsdeck, RateLimitError } from "../../src/index.js";
import { LIVE, liveEnv } from "../helpers.js";

test("9. 429: thrown with retryAfter when retries are off, waited out when on", { skip: LIVE.skip }, async () => {
  const env = liveEnv();
  const statuses: number[] = [];
  const recording: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    statuses.push(response.status);
    return response;
  };
  const limited = (maxRetries: number) =>
    new Opsdeck({
      baseUrl: env.OPSDECK_LIMITED_URL,
      keyId: env.OPSDECK_LIMITED_KEY_ID,
      secret: env.OPSDECK_LIMITED_SECRET,
      maxRetries,
      fetch: recording,
    });
  const limit = Number(env.OPSDECK_LIMIT);

  /** Reads with retries off until one is refused; a refusal with a second or two left is waited out first. */
  async function spend(): Promise<RateLimitError> {
    for (let reads = 0; reads <= 3 * limit; reads++) {
      const refused = await limited(0)
        .jobs.list({ limit: 1 })
        .then(() => undefined, (err: unknown) => err);
      if (refused === undefined) continue;
      assert.ok(refused instanceof RateLimitError, String(refused));
      if ((refused.retryAfter ?? 0) > 2) return refused;
      await new Promise((resolve) => setTimeout(resolve, (refused.retryAfter! + 0.5) * 1000));
    }
    throw new Error(`never refused in ${3 * limit} reads`);
  }

  const refused = await spend();
  assert.equal(refused.status, 429);
  assert.ok(refused.retryAfter !== undefined && refused.retryAfter >= 1, `retryAfter ${refused.retryAfter}`);
  assert.ok(refused.title, "a problem document");

  statuses.length = 0;
  const started = Date.now();
  const page = await limited(3).jobs.list({ limit: 1 });
  assert.ok(Array.isArray(page.data));
  assert.equal(statuses[0], 429, `refused first, then waited: ${statuses}`);
  assert.equal(statuses.at(-1), 200);
  assert.ok(Date.now() - started >= (refused.retryAfter! - 1) * 1000, "waited about the Retry-After");
});
