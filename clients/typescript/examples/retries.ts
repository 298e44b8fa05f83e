import { Opsdeck } from "@opsdeck/client";

const opsdeck = new Opsdeck({
  baseUrl: process.env.OPSDECK_URL!,
  keyId: process.env.OPSDECK_KEY_ID!,
  secret: process.env.OPSDECK_SECRET!,
  maxRetries: 5, // tries after the first, for connection errors, timeouts, 429 and 5xx but 501
  timeoutMs: 10_000, // for each try
  maxRetryAfterMs: 60_000, // a 429 asking for a longer wait is thrown at once
});

// Your own Idempotency-Key makes a write safe to repeat after a crash too, not only across retries.
const order = { id: `order-${Date.now()}`, total: "1200.00" };
const receipt = { type: "system.echo", payload: { message: `receipt for ${order.id}` } };
const first = await opsdeck.jobs.submit(receipt, { idempotencyKey: `${order.id}-receipt` });
const again = await opsdeck.jobs.submit(receipt, { idempotencyKey: `${order.id}-receipt` });
console.log(again.id === first.id, again.replayed); // true true
