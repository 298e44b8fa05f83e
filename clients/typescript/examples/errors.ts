import { NotFoundError, Opsdeck, ValidationError } from "@opsdeck/client";

const opsdeck = new Opsdeck({ baseUrl: process.env.OPSDECK_URL!, keyId: process.env.OPSDECK_KEY_ID!, secret: process.env.OPSDECK_SECRET! });

try {
  await opsdeck.jobs.submit({ type: "no.such.type" });
} catch (err) {
  if (!(err instanceof ValidationError)) throw err;
  console.log(err.status, err.title, err.errors); // 422 Validation failed { type: [ 'Unknown job type …' ] }
}

try {
  await opsdeck.jobs.get("job_that_does_not_exist");
} catch (err) {
  if (!(err instanceof NotFoundError)) throw err;
  console.log(err.status, err.detail); // 404 No such job.
}
