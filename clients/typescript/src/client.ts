/**
 * The client: `new Opsdeck({ baseUrl, keyId, secret })`, one property per API area
 * (`jobs`, `scans`, `webhookEndpoints`…) and `request()` for any call the typed ones do not cover.
 */
import { errorFor } from "./errors.js";
import { Emails } from "./resources/email.js";
import { Jobs } from "./resources/jobs.js";
import { Payments } from "./resources/payments.js";
import { Plans, Routers } from "./resources/routers.js";
import { Scans } from "./resources/scans.js";
import { Subscriptions, Vouchers } from "./resources/subscriptions.js";
import { Events, WebhookDeliveries, WebhookEndpoints } from "./resources/webhooks.js";
import { decode, Transport, type RawBody, type RequestOptions, type TransportOptions } from "./transport.js";

export type OpsdeckOptions = TransportOptions;

export interface CallOptions extends RequestOptions {
  /** Throw an OpsdeckError for a status >= 400 (default), or return the answer as it is. */
  throwOnError?: boolean;
}

export interface ApiResponse<T = unknown> {
  status: number;
  headers: Headers;
  /** The decoded body: JSON for a JSON answer, null when empty, else the bytes. */
  body: T;
  /** The server answered from an earlier request's record (`Idempotent-Replayed: true`). */
  replayed: boolean;
}

export class Opsdeck {
  readonly transport: Transport;
  readonly jobs: Jobs;
  readonly emails: Emails;
  readonly events: Events;
  readonly webhookEndpoints: WebhookEndpoints;
  readonly webhookDeliveries: WebhookDeliveries;
  readonly scans: Scans;
  readonly routers: Routers;
  readonly plans: Plans;
  readonly subscriptions: Subscriptions;
  readonly payments: Payments;
  readonly vouchers: Vouchers;

  constructor(options: OpsdeckOptions) {
    this.transport = new Transport(options);
    this.jobs = new Jobs(this);
    this.emails = new Emails(this);
    this.events = new Events(this);
    this.webhookEndpoints = new WebhookEndpoints(this);
    this.webhookDeliveries = new WebhookDeliveries(this);
    this.scans = new Scans(this);
    this.routers = new Routers(this);
    this.plans = new Plans(this);
    this.subscriptions = new Subscriptions(this);
    this.payments = new Payments(this);
    this.vouchers = new Vouchers(this);
  }

  /**
   * Any API call, signed and retried like the typed ones. `path` may carry a query
   * ("/api/v1/jobs?status=dead"); `body` is sent as JSON, or as it is when it is bytes (with
   * `headers["Content-Type"]`, default application/octet-stream).
   */
  async request<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    options: CallOptions = {},
  ): Promise<ApiResponse<T>> {
    return this.send<T>(method, path, encodeBody(body, options.headers), options);
  }

  /** A request whose body is already encoded (a multipart upload): signed and sent as these bytes. */
  async send<T = unknown>(
    method: string,
    path: string,
    body: RawBody | undefined,
    options: CallOptions = {},
  ): Promise<ApiResponse<T>> {
    const answer = await this.transport.send(method, path, body, options);
    const decoded = decode(answer.headers, answer.body);
    if (answer.status >= 400 && options.throwOnError !== false) {
      throw errorFor(answer.status, answer.headers, decoded);
    }
    return {
      status: answer.status,
      headers: answer.headers,
      body: decoded as T,
      replayed: answer.headers.get("idempotent-replayed") === "true",
    };
  }
}

function encodeBody(body: unknown, headers: Record<string, string> = {}): RawBody | undefined {
  if (body === undefined) return undefined;
  if (body instanceof Uint8Array) {
    const given = Object.keys(headers).find((name) => name.toLowerCase() === "content-type");
    return { bytes: body, contentType: given ? headers[given] : "application/octet-stream" };
  }
  // Serialised once, here: these bytes are signed and sent as they are.
  return { bytes: Buffer.from(JSON.stringify(body), "utf8"), contentType: "application/json" };
}
