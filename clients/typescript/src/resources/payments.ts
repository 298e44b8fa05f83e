/** /api/v1/payments: register an M-Pesa STK push, read and list payments, the callback URL. */
import type { Opsdeck } from "../client.js";
import { items } from "../pagination.js";
import type { RequestOptions } from "../transport.js";
import type { NewPayment, Page, Payment, PaymentListParams } from "../types.js";
import { segment } from "./paths.js";

export class Payments {
  constructor(private readonly client: Opsdeck) {}

  /**
   * Register the STK push the platform started, so that its callback turns into a
   * subscription. The same checkout_request_id again answers with the first payment.
   */
  async create(payment: NewPayment, options?: RequestOptions): Promise<Payment> {
    return (await this.client.request<Payment>("POST", "/api/v1/payments", payment, options)).body;
  }

  async get(id: string, options?: RequestOptions): Promise<Payment> {
    return (await this.client.request<Payment>("GET", `/api/v1/payments/${segment(id)}`, undefined, options)).body;
  }

  /** One page, newest first. */
  async list(params: PaymentListParams = {}, options?: RequestOptions): Promise<Page<Payment>> {
    const query = { ...params };
    return (await this.client.request<Page<Payment>>("GET", "/api/v1/payments", undefined, { ...options, query })).body;
  }

  iterate(params: PaymentListParams = {}, options?: RequestOptions): AsyncGenerator<Payment, void, undefined> {
    return items((p) => this.list(p, options), params);
  }

  /** The CallBackURL to give Daraja with each STK push (it carries this tenant's token). */
  async callbackUrl(options?: RequestOptions): Promise<string> {
    const path = "/api/v1/payments/mpesa/callback-url";
    return (await this.client.request<{ url: string }>("GET", path, undefined, options)).body.url;
  }
}
