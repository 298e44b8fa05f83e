/** /api/v1/jobs: submit (one or many), read, list, cancel, retry, and wait for the end. */
import type { Opsdeck } from "../client.js";
import { items, pages } from "../pagination.js";
import type { RequestOptions } from "../transport.js";
import type { Job, JobListParams, JobStatus, NewJob, Page, SubmittedJob } from "../types.js";
import { poll, type WaitOptions } from "../waiting.js";
import { inBatches, type BatchOptions } from "./batches.js";
import { segment } from "./paths.js";

/** The statuses a job does not leave by itself. */
export const FINISHED_STATUSES: readonly JobStatus[] = ["succeeded", "dead", "cancelled"];

export class Jobs {
  constructor(private readonly client: Opsdeck) {}

  /**
   * Submit a job. `replayed` is true when the answer is an earlier submission's: the same
   * Idempotency-Key (the header), or the same `idempotency_key` in the job (status 200).
   */
  async submit(job: NewJob, options?: RequestOptions): Promise<SubmittedJob> {
    const answer = await this.client.request<Job>("POST", "/api/v1/jobs", job, options);
    return { ...answer.body, replayed: answer.replayed || answer.status === 200 };
  }

  /** Submit many jobs through the bulk call (split as needed); the answers in order. */
  submitMany(jobs: NewJob[], options?: BatchOptions): Promise<SubmittedJob[]> {
    return inBatches(this.client, "/api/v1/jobs/batch", "jobs", jobs, options);
  }

  async get(id: string, options?: RequestOptions): Promise<Job> {
    return (await this.client.request<Job>("GET", `/api/v1/jobs/${segment(id)}`, undefined, options)).body;
  }

  /** One page, newest first. */
  async list(params: JobListParams = {}, options?: RequestOptions): Promise<Page<Job>> {
    const query = { ...params };
    return (await this.client.request<Page<Job>>("GET", "/api/v1/jobs", undefined, { ...options, query })).body;
  }

  /** Every job, newest first, a page of `params.limit` at a time. */
  iterate(params: JobListParams = {}, options?: RequestOptions): AsyncGenerator<Job, void, undefined> {
    return items((p) => this.list(p, options), params);
  }

  /** Every page, for callers that work a page at a time. */
  pages(params: JobListParams = {}, options?: RequestOptions): AsyncGenerator<Page<Job>, void, undefined> {
    return pages((p) => this.list(p, options), params);
  }

  /** Cancel a job that has not started (ConflictError once it runs or finished). */
  async cancel(id: string, options?: RequestOptions): Promise<Job> {
    return (await this.client.request<Job>("POST", `/api/v1/jobs/${segment(id)}/cancel`, undefined, options)).body;
  }

  /** Run a dead or cancelled job again (ConflictError otherwise). */
  async retry(id: string, options?: RequestOptions): Promise<Job> {
    return (await this.client.request<Job>("POST", `/api/v1/jobs/${segment(id)}/retry`, undefined, options)).body;
  }

  /** The job once it is finished (succeeded, dead or cancelled); WaitTimeoutError past the wait. */
  wait(id: string, options?: WaitOptions): Promise<Job> {
    const read = () => this.get(id, { signal: options?.signal });
    return poll(`job ${id}`, read, (job) => FINISHED_STATUSES.includes(job.status), options);
  }
}
