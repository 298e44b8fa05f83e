/** @opsdeck/client: the Opsdeck API from Node (>= 18), with no dependencies. */
export { Opsdeck, type ApiResponse, type CallOptions, type OpsdeckOptions } from "./client.js";
export {
  AuthenticationError,
  ConflictError,
  NotFoundError,
  OpsdeckConnectionError,
  OpsdeckError,
  PayloadTooLargeError,
  PermissionError,
  RateLimitError,
  ServerError,
  ValidationError,
  WaitTimeoutError,
  WebhookVerificationError,
  type FieldErrors,
  type Problem,
} from "./errors.js";
export { encodeMultipart, type FilePart } from "./multipart.js";
export type { BatchOptions } from "./resources/batches.js";
export { FINISHED_STATUSES } from "./resources/jobs.js";
export type { UploadOptions } from "./resources/scans.js";
export { sign, signedHeaders } from "./signing.js";
export type { RawBody, RequestOptions, TransportOptions } from "./transport.js";
export * from "./types.js";
export type { WaitOptions } from "./waiting.js";
export { verifyWebhook, type VerifyOptions, type WebhookHeaders } from "./webhooks.js";
