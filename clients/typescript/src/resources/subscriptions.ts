/** /api/v1/subscriptions (made by hand, extended, expired, provisioned again) and /api/v1/vouchers. */
import type { Opsdeck } from "../client.js";
import { items } from "../pagination.js";
import type { RequestOptions } from "../transport.js";
import type { Duration, NewSubscription, NewVouchers, Page, Subscription, SubscriptionListParams } from "../types.js";
import { segment } from "./paths.js";

export class Subscriptions {
  constructor(private readonly client: Opsdeck) {}

  /** Provision without a payment: a hotspot user for the plan's duration. */
  async create(subscription: NewSubscription, options?: RequestOptions): Promise<Subscription> {
    return (await this.client.request<Subscription>("POST", "/api/v1/subscriptions", subscription, options)).body;
  }

  async get(id: string, options?: RequestOptions): Promise<Subscription> {
    const path = `/api/v1/subscriptions/${segment(id)}`;
    return (await this.client.request<Subscription>("GET", path, undefined, options)).body;
  }

  /** One page, newest first. */
  async list(params: SubscriptionListParams = {}, options?: RequestOptions): Promise<Page<Subscription>> {
    const query = { ...params };
    const path = "/api/v1/subscriptions";
    return (await this.client.request<Page<Subscription>>("GET", path, undefined, { ...options, query })).body;
  }

  iterate(
    params: SubscriptionListParams = {},
    options?: RequestOptions,
  ): AsyncGenerator<Subscription, void, undefined> {
    return items((p) => this.list(p, options), params);
  }

  /** Add time (30d, 12h, 90m, 1w, or seconds). */
  extend(id: string, duration: Duration, options?: RequestOptions): Promise<Subscription> {
    return this.action(id, "extend", { duration }, options);
  }

  /** Remove the hotspot user now. */
  expire(id: string, options?: RequestOptions): Promise<Subscription> {
    return this.action(id, "expire", undefined, options);
  }

  /** Push the hotspot user to the router again. */
  reprovision(id: string, options?: RequestOptions): Promise<Subscription> {
    return this.action(id, "reprovision", undefined, options);
  }

  private async action(id: string, name: string, body: unknown, options?: RequestOptions): Promise<Subscription> {
    const path = `/api/v1/subscriptions/${segment(id)}/${name}`;
    return (await this.client.request<Subscription>("POST", path, body, options)).body;
  }
}

export class Vouchers {
  constructor(private readonly client: Opsdeck) {}

  /** Generate `count` vouchers: subscriptions with generated credentials, for a plan on a router. */
  async create(vouchers: NewVouchers, options?: RequestOptions): Promise<Subscription[]> {
    const answer = await this.client.request<{ data: Subscription[] }>("POST", "/api/v1/vouchers", vouchers, options);
    return answer.body.data;
  }
}
