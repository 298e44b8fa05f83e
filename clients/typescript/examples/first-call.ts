import { Opsdeck } from "@opsdeck/client";

const opsdeck = new Opsdeck({ baseUrl: process.env.OPSDECK_URL!, keyId: process.env.OPSDECK_KEY_ID!, secret: process.env.OPSDECK_SECRET! });
const job = await opsdeck.jobs.submit({ type: "system.echo", payload: { message: "hello" } });
console.log((await opsdeck.jobs.wait(job.id)).result); // { message: 'hello' }
