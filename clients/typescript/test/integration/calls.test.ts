/**
 * Every typed call the scenarios do not make, once against the live routes: the path, the
 * method and the answer's shape are right (emails, events by own id, endpoint changes and
 * deliveries, routers, plans, subscriptions and their actions, vouchers, payments).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ConflictError, NotFoundError, type Subscription } from "../../src/index.js";
import { LIVE, liveClient, startPeer, unique } from "../helpers.js";

describe("the other typed calls against a live Opsdeck", { skip: LIVE.skip }, () => {
  test("emails: send, sendMany, get, list, iterate", async () => {
    const opsdeck = liveClient();
    const to = `${unique("buyer")}@example.com`;
    const one = await opsdeck.emails.send({ to, subject: "Your receipt", text: "Thanks." });
    const many = await opsdeck.emails.sendMany([
      { to, subject: "Shipped", text: "On its way." },
      { to, subject: "Delivered", text: "Arrived." },
    ]);
    assert.equal(many.length, 2);
    assert.equal((await opsdeck.emails.get(one.id)).to, to);
    const listed = await opsdeck.emails.list({ to, limit: 2 });
    assert.equal(listed.data.length, 2);
    const ids: string[] = [];
    for await (const mail of opsdeck.emails.iterate({ to, limit: 2 })) ids.push(mail.id);
    assert.deepEqual(new Set(ids), new Set([one.id, ...many.map((m) => m.id)]));
  });

  test("events and endpoints: own ids, update, list, deliveries, retry, recover", async () => {
    const opsdeck = liveClient();
    const peer = await startPeer((_, res) => res.writeHead(200).end("ok"));
    const type = unique("client.calls");
    try {
      const endpoint = await opsdeck.webhookEndpoints.create({ url: `${peer.url}/in`, event_types: [type] });
      const changed = await opsdeck.webhookEndpoints.update(endpoint.id, { description: "orders" });
      assert.equal(changed.description, "orders");
      assert.ok((await opsdeck.webhookEndpoints.list()).data.some((e) => e.id === endpoint.id));
      assert.equal((await opsdeck.webhookEndpoints.get(endpoint.id)).url, `${peer.url}/in`);

      const own = unique("evt");
      const event = await opsdeck.events.publish({ id: own, type, payload: { ok: true } });
      assert.equal(event.client_id, own);
      assert.equal((await opsdeck.events.publish({ id: own, type, payload: { ok: true } })).replayed, true);
      const read = await opsdeck.events.get(own);
      assert.equal(read.id, event.id);
      assert.equal(read.deliveries?.length, 1);

      const delivery = read.deliveries![0]!;
      const deliveries: string[] = [];
      for await (const d of opsdeck.webhookEndpoints.iterateDeliveries(endpoint.id, { limit: 1 })) deliveries.push(d.id);
      assert.deepEqual(deliveries, [delivery.id]);
      const detail = await opsdeck.webhookDeliveries.get(delivery.id);
      assert.ok(Array.isArray(detail.attempt_log));
      assert.equal((await opsdeck.webhookDeliveries.retry(delivery.id)).id, delivery.id);
      const recovered = await opsdeck.webhookEndpoints.recover(endpoint.id, { since: new Date(Date.now() - 3600_000) });
      assert.equal(typeof recovered.requeued, "number");
      await opsdeck.webhookEndpoints.delete(endpoint.id);
    } finally {
      await peer.close();
    }
  });

  test("provisioning: routers, plans, subscriptions and their actions, vouchers, payments", async () => {
    const opsdeck = liveClient();
    const router = await opsdeck.routers.create({ name: unique("r"), host: "127.0.0.1", port: 9, username: "api", password: "x" });
    assert.equal((await opsdeck.routers.update(router.id, { hotspot_server: "hs1" })).hotspot_server, "hs1");
    assert.ok((await opsdeck.routers.list()).data.some((r) => r.id === router.id));
    assert.equal((await opsdeck.routers.get(router.id)).name, router.name);

    const plan = await opsdeck.plans.create({ name: unique("day"), price: "50.00", duration: "1d" });
    assert.equal(plan.duration_seconds, 86400);
    assert.equal((await opsdeck.plans.update(plan.id, { price: 60 })).price, "60.00");
    assert.ok((await opsdeck.plans.list()).data.some((p) => p.id === plan.id));
    assert.equal((await opsdeck.plans.get(plan.id)).id, plan.id);

    const made = await opsdeck.subscriptions.create({ plan_id: plan.id, router_id: router.id, phone: "+254712345678" });
    assert.equal((await opsdeck.subscriptions.get(made.id)).username, made.username);
    const seen: Subscription[] = [];
    for await (const s of opsdeck.subscriptions.iterate({ limit: 1 })) seen.push(s);
    assert.ok(seen.some((s) => s.id === made.id));
    // The router is not there: each action is answered (202) or refused for the subscription's state (409).
    for (const act of [
      () => opsdeck.subscriptions.extend(made.id, "1h"),
      () => opsdeck.subscriptions.reprovision(made.id),
      () => opsdeck.subscriptions.expire(made.id),
    ]) {
      const outcome = await act().catch((e: unknown) => e);
      assert.ok(outcome instanceof ConflictError || (outcome as Subscription).id === made.id, String(outcome));
    }

    const vouchers = await opsdeck.vouchers.create({ plan_id: plan.id, router_id: router.id, count: 2 });
    assert.equal(vouchers.length, 2);

    const payment = await opsdeck.payments.create({
      checkout_request_id: unique("ws_CO"),
      plan_id: plan.id,
      router_id: router.id,
      phone: "+254712345678",
    });
    assert.equal(payment.status, "expected");
    assert.equal((await opsdeck.payments.get(payment.id)).id, payment.id);
    assert.ok((await opsdeck.payments.list({ status: "expected" })).data.some((p) => p.id === payment.id));
    assert.match(await opsdeck.payments.callbackUrl(), /\/api\/v1\/payments\/mpesa\/callback\//);

    await opsdeck.routers.delete(router.id);
    await assert.rejects(opsdeck.routers.get(router.id), NotFoundError);
  });
});
