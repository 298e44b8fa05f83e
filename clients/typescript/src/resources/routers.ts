/** /api/v1/routers and /api/v1/plans. */
import type { Opsdeck } from "../client.js";
import type { RequestOptions } from "../transport.js";
import type { NewPlan, NewRouter, Page, Plan, Router } from "../types.js";
import { segment } from "./paths.js";

export class Routers {
  constructor(private readonly client: Opsdeck) {}

  /** Add a MikroTik router (its password is stored encrypted and never returned). */
  async create(router: NewRouter, options?: RequestOptions): Promise<Router> {
    return (await this.client.request<Router>("POST", "/api/v1/routers", router, options)).body;
  }

  /** Every router with its last check (one page: the list is not paginated). */
  async list(options?: RequestOptions): Promise<Page<Router>> {
    return (await this.client.request<Page<Router>>("GET", "/api/v1/routers", undefined, options)).body;
  }

  async get(id: string, options?: RequestOptions): Promise<Router> {
    return (await this.client.request<Router>("GET", `/api/v1/routers/${segment(id)}`, undefined, options)).body;
  }

  async update(id: string, changes: Partial<NewRouter>, options?: RequestOptions): Promise<Router> {
    return (await this.client.request<Router>("PATCH", `/api/v1/routers/${segment(id)}`, changes, options)).body;
  }

  /** Remove a router (its history stays; no more checks or provisioning). */
  async delete(id: string, options?: RequestOptions): Promise<void> {
    await this.client.request("DELETE", `/api/v1/routers/${segment(id)}`, undefined, options);
  }
}

export class Plans {
  constructor(private readonly client: Opsdeck) {}

  async create(plan: NewPlan, options?: RequestOptions): Promise<Plan> {
    return (await this.client.request<Plan>("POST", "/api/v1/plans", plan, options)).body;
  }

  /** Every plan (one page: the list is not paginated). */
  async list(options?: RequestOptions): Promise<Page<Plan>> {
    return (await this.client.request<Page<Plan>>("GET", "/api/v1/plans", undefined, options)).body;
  }

  async get(id: string, options?: RequestOptions): Promise<Plan> {
    return (await this.client.request<Plan>("GET", `/api/v1/plans/${segment(id)}`, undefined, options)).body;
  }

  /** Change some fields (subscriptions already made keep their expiry; `profile: null` resets it). */
  async update(id: string, changes: Partial<NewPlan>, options?: RequestOptions): Promise<Plan> {
    return (await this.client.request<Plan>("PATCH", `/api/v1/plans/${segment(id)}`, changes, options)).body;
  }
}
