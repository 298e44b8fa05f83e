import { Opsdeck } from "@opsdeck/client";

const opsdeck = new Opsdeck({ baseUrl: process.env.OPSDECK_URL!, keyId: process.env.OPSDECK_KEY_ID!, secret: process.env.OPSDECK_SECRET! });
const { status, body } = await opsdeck.request<{ openapi: string }>("GET", "/api/v1/openapi.json");
console.log(status, body.openapi); // 200 3.0.3
