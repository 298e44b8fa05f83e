import { createServer } from "node:http";

import { verifyWebhook, WebhookVerificationError } from "@opsdeck/client";

const secret = process.env.OPSDECK_WEBHOOK_SECRET!; // the whsec_… that webhookEndpoints.create answered

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    try {
      // The raw bytes as received: a body parsed and serialised again is not what was signed.
      const event = verifyWebhook(secret, req.headers, Buffer.concat(chunks));
      console.log("received", event.type, JSON.stringify(event.data));
      res.writeHead(204).end();
    } catch (err) {
      res.writeHead(err instanceof WebhookVerificationError ? 400 : 500).end();
    }
  });
});
server.listen(Number(process.env.PORT ?? 8000), "127.0.0.1", () => console.log("listening"));
