/**
 * The API's resources as the server answers them (field names as on the wire, snake_case), and
 * what each create call takes. Times are ISO 8601 strings in UTC; amounts are decimal strings.
 */

/** JSON as a payload may hold it. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** One page of a list. `next_cursor` is null on the last page. */
export interface Page<T> {
  data: T[];
  next_cursor?: string | null;
}

export interface ListParams {
  cursor?: string;
  /** Page size, 1 to 200 (server default 50). */
  limit?: number;
}

// -- jobs -------------------------------------------------------------------------------------
export type JobStatus = "pending" | "queued" | "running" | "succeeded" | "retrying" | "dead" | "cancelled";
export type Priority = "high" | "normal" | "low";

export interface Job {
  id: string;
  type: string;
  payload: { [key: string]: Json };
  priority: Priority;
  max_attempts: number | null;
  idempotency_key: string | null;
  queue: string;
  status: JobStatus;
  result: Json | null;
  error: string | null;
  attempts: number;
  next_attempt_at: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface NewJob {
  /** A public job type, e.g. "system.echo". */
  type: string;
  payload?: { [key: string]: Json };
  priority?: Priority;
  delay_seconds?: number;
  max_attempts?: number | null;
  /** The platform's own key for the job: the same key again answers with the first job. */
  idempotency_key?: string | null;
}

/** A job as a submission answers it: `replayed` when it was the answer to an earlier submission. */
export interface SubmittedJob extends Job {
  replayed: boolean;
}

export interface JobListParams extends ListParams {
  status?: JobStatus;
  type?: string;
}

// -- emails -----------------------------------------------------------------------------------
export type EmailStatus = "queued" | "sending" | "sent" | "retrying" | "failed" | "suppressed" | "digested";

export interface Email {
  id: string;
  to: string;
  template: string | null;
  subject: string | null;
  text: string | null;
  digest_key: string | null;
  status: EmailStatus;
  attempts: number;
  next_attempt_at: string | null;
  last_error: string | null;
  message_id: string;
  batch_id: string | null;
  digest_id: string | null;
  created_at: string;
  sent_at: string | null;
}

/** A template, or a subject and a text. */
export interface NewEmail {
  to: string;
  template?: string | null;
  subject?: string | null;
  text?: string | null;
  html?: string;
  context?: { [key: string]: Json } | null;
  /** Mails with the same digest key to one recipient are coalesced into one. */
  digest_key?: string | null;
  critical?: boolean;
  send_after?: string | null;
  /** Reply-To and X-… headers only. */
  headers?: { [name: string]: string } | null;
}

export interface EmailListParams extends ListParams {
  status?: EmailStatus;
  to?: string;
}

// -- events and webhooks ----------------------------------------------------------------------
export interface Event {
  /** Opsdeck's id. */
  id: string;
  /** The platform's own id, when the event was published with one. */
  client_id: string | null;
  type: string;
  payload: Json;
  created_at: string;
  /** When read one by one: the event's deliveries. */
  deliveries?: Delivery[];
}

export interface NewEvent {
  type: string;
  payload: Json;
  /** The platform's own event id: publishing it again answers with the first event. */
  id?: string;
}

export interface PublishedEvent extends Event {
  replayed: boolean;
}

export type DeliveryStatus = "pending" | "retrying" | "succeeded" | "dead" | "cancelled";

export interface DeliveryAttempt {
  attempted_at: string;
  duration_ms: number;
  status_code: number | null;
  response_body: string | null;
  error: string | null;
  succeeded: boolean;
}

export interface Delivery {
  id: string;
  event_id: string;
  endpoint_id: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
  /** Every attempt, when the delivery is read one by one. */
  attempt_log?: DeliveryAttempt[];
}

export interface DeliveryListParams extends ListParams {
  status?: DeliveryStatus;
}

export interface WebhookEndpoint {
  id: string;
  url: string;
  description: string;
  /** The event types sent to it; null: every type. */
  event_types: string[] | null;
  rate_limit_per_second: number | null;
  enabled: boolean;
  disabled_reason: string | null;
  last_success_at: string | null;
  failing_since: string | null;
  created_at: string;
  updated_at: string;
}

export interface NewWebhookEndpoint {
  url: string;
  description?: string;
  event_types?: string[] | null;
  rate_limit_per_second?: number | null;
  enabled?: boolean;
}

/** A created endpoint: the signing secret (whsec_…) is shown this once. */
export interface CreatedWebhookEndpoint extends WebhookEndpoint {
  secret: string;
}

/** After a rotation: the new secret; the old one also signs until `previous_secret_expires_at`. */
export interface RotatedWebhookEndpoint extends CreatedWebhookEndpoint {
  previous_secret_expires_at: string;
}

// -- scans ------------------------------------------------------------------------------------
export type ScanStatus = "pending" | "clean" | "infected" | "rejected" | "error";

export interface Scan {
  id: string;
  status: ScanStatus;
  name: string;
  extension: string;
  content_type: string | null;
  size: number;
  sha256: string;
  reject_reason: string | null;
  /** The signature clamd found, for an infected file. */
  signature: string | null;
  engine_version: string | null;
  db_version: number | null;
  db_date: string | null;
  location: "files" | "quarantine" | "none";
  attempts: number;
  last_error: string | null;
  created_at: string;
  verdict_at: string | null;
  rescanned_at: string | null;
  released_at: string | null;
}

export interface ScanListParams extends ListParams {
  status?: ScanStatus;
}

// -- provisioning -----------------------------------------------------------------------------
export interface Router {
  id: string;
  name: string;
  host: string;
  port: number;
  tls: boolean;
  tls_verify: boolean;
  username: string;
  hotspot_server: string;
  status: "unknown" | "online" | "offline";
  version: string | null;
  uptime: string | null;
  cpu_load: number | null;
  free_memory: number | null;
  board_name: string | null;
  checked_at: string | null;
  last_error: string | null;
  created_at: string;
}

export interface NewRouter {
  name: string;
  host: string;
  /** Default 8728, or 8729 with TLS. */
  port?: number;
  tls?: boolean;
  tls_verify?: boolean;
  username: string;
  /** Stored encrypted, never returned. */
  password: string;
  hotspot_server?: string;
}

/** 30d, 12h, 90m, 1w, or a number of seconds. */
export type Duration = string | number;

export interface Plan {
  id: string;
  name: string;
  price: string;
  currency: string;
  duration_seconds: number;
  rate_limit: string | null;
  uptime_limit: string | null;
  data_limit_bytes: number | null;
  shared_users: number;
  profile: string;
  active: boolean;
  created_at: string;
}

export interface NewPlan {
  name: string;
  /** A number or a decimal string with at most two decimals. */
  price: number | string;
  currency?: string;
  duration: Duration;
  rate_limit?: string | null;
  uptime_limit?: string | null;
  data_limit_bytes?: number | null;
  shared_users?: number;
  profile?: string | null;
  active?: boolean;
}

export type SubscriptionStatus = "pending" | "provisioning" | "active" | "expired" | "failed" | "cancelled";

export interface Subscription {
  id: string;
  plan_id: string;
  router_id: string;
  mac: string | null;
  username: string;
  /** The customer's hotspot password. */
  password: string;
  subscriber_id: string | null;
  payment_id: string | null;
  source: string;
  status: SubscriptionStatus;
  starts_at: string;
  expires_at: string;
  provisioned_at: string | null;
  expired_at: string | null;
  attempts: number;
  last_error: string | null;
  created_at: string;
}

export interface NewSubscription {
  plan_id: string;
  router_id: string;
  /** E.164, e.g. +254712345678. */
  phone?: string | null;
  mac?: string | null;
  username?: string;
  password?: string;
}

export interface SubscriptionListParams extends ListParams {
  status?: SubscriptionStatus;
}

export interface NewVouchers {
  plan_id: string;
  router_id: string;
  /** 1 to 500. */
  count: number;
  prefix?: string;
  length?: number;
  charset?: "lower" | "upper" | "digits" | "mixed";
  same_password?: boolean;
}

export type PaymentStatus = "expected" | "processing" | "processed" | "failed" | "held";

export interface Payment {
  id: string;
  checkout_request_id: string;
  plan_id: string;
  router_id: string;
  phone: string;
  mac: string | null;
  status: PaymentStatus;
  amount_expected: string;
  amount_paid: string | null;
  receipt_number: string | null;
  transaction_date: string | null;
  result_code: number | null;
  result_desc: string | null;
  merchant_request_id: string | null;
  subscription_id: string | null;
  callbacks: number;
  callback_at: string | null;
  created_at: string;
}

/** The STK push the platform started, registered so that its callback can be matched. */
export interface NewPayment {
  checkout_request_id: string;
  plan_id: string;
  router_id: string;
  phone: string;
  mac?: string | null;
}

export interface PaymentListParams extends ListParams {
  status?: PaymentStatus;
}

/** What an endpoint receives: the event's type, its time and the payload it was published with. */
export interface WebhookPayload<T = Json> {
  type: string;
  timestamp: string;
  data: T;
}
