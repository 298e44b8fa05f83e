/** /api/v1/events, /api/v1/webhook-endpoints and /api/v1/webhook-deliveries. */
import type { Opsdeck } from "../client.js";
import { items } from "../pagination.js";
import type { RequestOptions } from "../transport.js";
import type {
  CreatedWebhookEndpoint,
  Delivery,
  DeliveryListParams,
  Event,
  NewEvent,
  NewWebhookEndpoint,
  Page,
  PublishedEvent,
  RotatedWebhookEndpoint,
  WebhookEndpoint,
} from "../types.js";
import { inBatches, type BatchOptions } from "./batches.js";
import { segment } from "./paths.js";

export class Events {
  constructor(private readonly client: Opsdeck) {}

  /**
   * Publish an event to every endpoint subscribed to its type. `replayed` is true when the
   * answer is an earlier publication's (the same Idempotency-Key, or the same event `id`).
   */
  async publish(event: NewEvent, options?: RequestOptions): Promise<PublishedEvent> {
    const answer = await this.client.request<Event>("POST", "/api/v1/events", event, options);
    return { ...answer.body, replayed: answer.replayed || answer.status === 200 };
  }

  /** Publish many events through the bulk call (split as needed); the answers in order. */
  publishMany(events: NewEvent[], options?: BatchOptions): Promise<PublishedEvent[]> {
    return inBatches(this.client, "/api/v1/events/batch", "events", events, options);
  }

  /** An event, by Opsdeck's id or the platform's own, with its deliveries. */
  async get(id: string, options?: RequestOptions): Promise<Event> {
    return (await this.client.request<Event>("GET", `/api/v1/events/${segment(id)}`, undefined, options)).body;
  }
}

const ENDPOINTS = "/api/v1/webhook-endpoints";

export class WebhookEndpoints {
  constructor(private readonly client: Opsdeck) {}

  /** Create an endpoint. Keep the answer's `secret` (whsec_…): it is shown this once. */
  async create(endpoint: NewWebhookEndpoint, options?: RequestOptions): Promise<CreatedWebhookEndpoint> {
    return (await this.client.request<CreatedWebhookEndpoint>("POST", ENDPOINTS, endpoint, options)).body;
  }

  async list(options?: RequestOptions): Promise<Page<WebhookEndpoint>> {
    return (await this.client.request<Page<WebhookEndpoint>>("GET", ENDPOINTS, undefined, options)).body;
  }

  async get(id: string, options?: RequestOptions): Promise<WebhookEndpoint> {
    return (await this.client.request<WebhookEndpoint>("GET", `${ENDPOINTS}/${segment(id)}`, undefined, options)).body;
  }

  /** Change some fields (url, description, event_types, rate_limit_per_second, enabled). */
  async update(id: string, changes: Partial<NewWebhookEndpoint>, options?: RequestOptions): Promise<WebhookEndpoint> {
    return (await this.client.request<WebhookEndpoint>("PATCH", `${ENDPOINTS}/${segment(id)}`, changes, options)).body;
  }

  /** Delete an endpoint (its deliveries' history stays). */
  async delete(id: string, options?: RequestOptions): Promise<void> {
    await this.client.request("DELETE", `${ENDPOINTS}/${segment(id)}`, undefined, options);
  }

  /** A new signing secret; the old one also signs until `previous_secret_expires_at`. */
  async rotateSecret(id: string, options?: RequestOptions): Promise<RotatedWebhookEndpoint> {
    const path = `${ENDPOINTS}/${segment(id)}/rotate-secret`;
    return (await this.client.request<RotatedWebhookEndpoint>("POST", path, undefined, options)).body;
  }

  /** Send again every dead or cancelled delivery created in [since, until); how many were queued. */
  async recover(
    id: string,
    window: { since: string | Date; until?: string | Date | null },
    options?: RequestOptions,
  ): Promise<{ requeued: number }> {
    const body = { since: iso(window.since), until: window.until == null ? null : iso(window.until) };
    const path = `${ENDPOINTS}/${segment(id)}/recover`;
    return (await this.client.request<{ requeued: number }>("POST", path, body, options)).body;
  }

  /** One page of an endpoint's deliveries, newest first. */
  async listDeliveries(id: string, params: DeliveryListParams = {}, options?: RequestOptions): Promise<Page<Delivery>> {
    const path = `${ENDPOINTS}/${segment(id)}/deliveries`;
    const query = { ...params };
    return (await this.client.request<Page<Delivery>>("GET", path, undefined, { ...options, query })).body;
  }

  iterateDeliveries(
    id: string,
    params: DeliveryListParams = {},
    options?: RequestOptions,
  ): AsyncGenerator<Delivery, void, undefined> {
    return items((p) => this.listDeliveries(id, p, options), params);
  }
}

export class WebhookDeliveries {
  constructor(private readonly client: Opsdeck) {}

  /** A delivery with every attempt (`attempt_log`). */
  async get(id: string, options?: RequestOptions): Promise<Delivery> {
    const path = `/api/v1/webhook-deliveries/${segment(id)}`;
    return (await this.client.request<Delivery>("GET", path, undefined, options)).body;
  }

  /** Send a delivery again now (ConflictError when its endpoint is disabled or deleted). */
  async retry(id: string, options?: RequestOptions): Promise<Delivery> {
    const path = `/api/v1/webhook-deliveries/${segment(id)}/retry`;
    return (await this.client.request<Delivery>("POST", path, undefined, options)).body;
  }
}

function iso(value: string | Date): string {
  return value instanceof Date ? value.toISOString() : value;
}
