/**
 * One error tree. Every refusal from the API is an `OpsdeckError` built from its problem+json
 * body; the statuses a caller usually branches on have their own subclass, so
 * `err instanceof NotFoundError` reads as what it means. Failures to get any answer at all are
 * `OpsdeckConnectionError`, and webhook checks fail with `WebhookVerificationError`.
 */

/** Field errors: a list of messages per field; nested for batches (item index → field → messages). */
export interface FieldErrors {
  [field: string]: string[] | FieldErrors;
}

/** An application/problem+json document (RFC 9457), with any extension members. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  errors?: FieldErrors;
  [extension: string]: unknown;
}

export class OpsdeckError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** The problem's type URI, e.g. https://opsdeck.dev/problems/not-found. */
  readonly type: string | undefined;
  readonly title: string | undefined;
  readonly detail: string | undefined;
  /** Field errors of a 422, keyed by field (by item index, then field, for a batch). */
  readonly errors: FieldErrors | undefined;
  /** Seconds the server asked to wait (`Retry-After`), when it said. */
  readonly retryAfter: number | undefined;
  /** The whole problem document, extension members included (a rejected scan's `scan_id`). */
  readonly problem: Problem;
  readonly headers: Headers;

  constructor(status: number, problem: Problem, headers: Headers = new Headers()) {
    super(describe(status, problem));
    this.name = new.target.name;
    this.status = status;
    this.type = problem.type;
    this.title = problem.title;
    this.detail = problem.detail;
    this.errors = problem.errors;
    this.retryAfter = parseRetryAfter(headers.get("retry-after"));
    this.problem = problem;
    this.headers = headers;
  }
}

/** "422 Validation failed: The request body has invalid fields. {"type":["Unknown job type."]}" */
function describe(status: number, problem: Problem): string {
  let text = `${status} ${problem.title ?? "HTTP error"}`;
  if (problem.detail) text += `: ${problem.detail}`;
  if (problem.errors) text += " " + JSON.stringify(problem.errors).slice(0, 500);
  return text;
}

/** 401: missing or unknown key, bad signature, or a clock more than 300 s off. */
export class AuthenticationError extends OpsdeckError {}
/** 403. */
export class PermissionError extends OpsdeckError {}
/** 404: no such resource for this tenant (or its family is switched off). */
export class NotFoundError extends OpsdeckError {}
/** 409: the resource's state does not allow it (cancel a running job, retry a live one). */
export class ConflictError extends OpsdeckError {}
/** 413: a body or file past the server's limit. */
export class PayloadTooLargeError extends OpsdeckError {}
/** 422: invalid fields (see `errors`), a reused Idempotency-Key, a rejected upload. */
export class ValidationError extends OpsdeckError {}
/** 429: over the tenant's rate limit; `retryAfter` says for how many seconds. */
export class RateLimitError extends OpsdeckError {}
/** 5xx: the server failed (and kept nothing of the request). */
export class ServerError extends OpsdeckError {}

const BY_STATUS: Record<number, typeof OpsdeckError> = {
  401: AuthenticationError,
  403: PermissionError,
  404: NotFoundError,
  409: ConflictError,
  413: PayloadTooLargeError,
  422: ValidationError,
  429: RateLimitError,
};

/** The error for an answer with status >= 400; `body` is its decoded body. */
export function errorFor(status: number, headers: Headers, body: unknown): OpsdeckError {
  if (body !== null && typeof body === "object" && !(body instanceof Uint8Array)) {
    return new (kindOf(status))(status, body as Problem, headers);
  }
  // Not a problem document (a proxy's error page): its start, as the detail.
  const text = body instanceof Uint8Array ? Buffer.from(body).toString("utf8") : typeof body === "string" ? body : "";
  return new (kindOf(status))(status, { title: `HTTP ${status}`, detail: text.slice(0, 300) || undefined }, headers);
}


function kindOf(status: number): typeof OpsdeckError {
  return BY_STATUS[status] ?? (status >= 500 ? ServerError : OpsdeckError);
}

/** No answer: the connection failed or the request timed out, on every try. */
export class OpsdeckConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "OpsdeckConnectionError";
  }
}

/** A wait helper (job, scan verdict) gave up before the resource got where it waited for. */
export class WaitTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WaitTimeoutError";
  }
}

/** A webhook that is not Opsdeck's, was changed, or is outside the time tolerance. */
export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookVerificationError";
  }
}

/**
 * Seconds from a Retry-After header: delta-seconds, or an HTTP date (counted from now).
 * Undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value == null || value.trim() === "") return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now) / 1000));
}
