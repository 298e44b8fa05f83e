import { Opsdeck } from "@opsdeck/client";

const opsdeck = new Opsdeck({ baseUrl: process.env.OPSDECK_URL!, keyId: process.env.OPSDECK_KEY_ID!, secret: process.env.OPSDECK_SECRET! });

// Pages of 100 are fetched as the loop goes; break whenever you have seen enough.
let finished = 0;
for await (const job of opsdeck.jobs.iterate({ type: "system.echo", limit: 100 })) {
  if (job.status === "succeeded") finished += 1;
}
console.log(`${finished} echo jobs succeeded`);
