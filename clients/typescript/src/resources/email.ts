/** /api/v1/emails: queue one mail or a list, read, list. */
import type { Opsdeck } from "../client.js";
import { items } from "../pagination.js";
import type { RequestOptions } from "../transport.js";
import type { Email, EmailListParams, NewEmail, Page } from "../types.js";
import { segment } from "./paths.js";

export class Emails {
  constructor(private readonly client: Opsdeck) {}

  /** Queue one mail. */
  async send(mail: NewEmail, options?: RequestOptions): Promise<Email> {
    return (await this.client.request<Email>("POST", "/api/v1/emails", mail, options)).body;
  }

  /** Queue 1 to 1,000 mails in one call (all or none: any invalid mail is a ValidationError). */
  async sendMany(mails: NewEmail[], options?: RequestOptions): Promise<Email[]> {
    return (await this.client.request<{ data: Email[] }>("POST", "/api/v1/emails", mails, options)).body.data;
  }

  async get(id: string, options?: RequestOptions): Promise<Email> {
    return (await this.client.request<Email>("GET", `/api/v1/emails/${segment(id)}`, undefined, options)).body;
  }

  /** One page, newest first. */
  async list(params: EmailListParams = {}, options?: RequestOptions): Promise<Page<Email>> {
    const query = { ...params };
    return (await this.client.request<Page<Email>>("GET", "/api/v1/emails", undefined, { ...options, query })).body;
  }

  iterate(params: EmailListParams = {}, options?: RequestOptions): AsyncGenerator<Email, void, undefined> {
    return items((p) => this.list(p, options), params);
  }
}
