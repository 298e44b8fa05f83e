<?php

declare(strict_types=1);

namespace Opsdeck\Client\Resource;

use Opsdeck\Client\Json;

/**
 * /api/v1/jobs: submit, read, list, cancel, retry, wait.
 *
 * A job, as answered: array{id: string, type: string, payload: array, priority: string,
 * queue: string, status: string, result: mixed, error: ?string, attempts: int,
 * idempotency_key: ?string, next_attempt_at: ?string, created_at: string,
 * started_at: ?string, finished_at: ?string}.
 */
final class Jobs extends Resource
{
    /** The states a job does not leave by itself. */
    public const FINISHED = ['succeeded', 'dead', 'cancelled'];

    /**
     * Submit one job.
     *
     * @param array<string, mixed>|object $payload the job type's payload (`[]` is sent as `{}`)
     * @param array{priority?: 'high'|'normal'|'low', delay_seconds?: int|float, max_attempts?: int, idempotency_key?: string} $fields
     *     the job's other fields; `idempotency_key` is the job's own key, kept as long as the job
     * @param string|null $idempotencyKey the request's Idempotency-Key header (48 hours)
     * @return array<string, mixed> the job, plus `replayed`: true when it was answered from an
     *     earlier submission (the same Idempotency-Key, or a known job idempotency_key)
     */
    public function submit(string $type, array|object $payload = [], array $fields = [], ?string $idempotencyKey = null): array
    {
        $response = $this->write('POST', '/api/v1/jobs', ['type' => $type, 'payload' => Json::object($payload)] + $fields, $idempotencyKey);

        return $response->json() + ['replayed' => $response->replayed() || $response->status === 200];
    }

    /**
     * Submit many jobs through the bulk call, split into calls of at most `$batchSize` jobs and
     * about `$batchBytes` of JSON. Give each job an `idempotency_key` to make the whole list
     * safe to submit again after a failure part-way.
     *
     * @param list<array{type: string, payload?: array<string, mixed>|object, priority?: string, delay_seconds?: int|float, max_attempts?: int, idempotency_key?: string}> $jobs
     * @return list<array<string, mixed>> the jobs in order, each with `replayed`
     */
    public function submitMany(array $jobs, int $batchSize = 1000, int $batchBytes = 4 << 20): array
    {
        $jobs = array_map(static fn (array $job): array => array_key_exists('payload', $job) ? ['payload' => Json::object($job['payload'])] + $job : $job, $jobs);
        $answers = [];
        foreach (self::chunks($jobs, $batchSize, $batchBytes) as $chunk) {
            array_push($answers, ...$this->write('POST', '/api/v1/jobs/batch', ['jobs' => $chunk])->json()['data']);
        }

        return $answers;
    }

    /** @return array<string, mixed> */
    public function get(string $id): array
    {
        return $this->read('/api/v1/jobs/' . self::id($id));
    }

    /**
     * Every job, newest first, fetched a page at a time as you iterate.
     *
     * @return \Generator<int, array<string, mixed>>
     */
    public function list(?string $status = null, ?string $type = null, int $pageSize = 50): \Generator
    {
        return $this->paginate('/api/v1/jobs', ['status' => $status, 'type' => $type], $pageSize);
    }

    /**
     * Cancel a job that has not started (ConflictException when running or finished).
     *
     * @return array<string, mixed>
     */
    public function cancel(string $id, ?string $idempotencyKey = null): array
    {
        return $this->write('POST', '/api/v1/jobs/' . self::id($id) . '/cancel', null, $idempotencyKey)->json();
    }

    /**
     * Run a dead or cancelled job again (ConflictException otherwise).
     *
     * @return array<string, mixed>
     */
    public function retry(string $id, ?string $idempotencyKey = null): array
    {
        return $this->write('POST', '/api/v1/jobs/' . self::id($id) . '/retry', null, $idempotencyKey)->json();
    }

    /**
     * Poll a job until it is succeeded, dead or cancelled, and return it (check its `status`).
     *
     * @return array<string, mixed>
     *
     * @throws \Opsdeck\Client\Exception\TimeoutException
     */
    public function wait(string $id, float $timeout = 60.0, float $interval = 0.5): array
    {
        return $this->poll(
            '/api/v1/jobs/' . self::id($id),
            static fn (array $job): bool => in_array($job['status'], self::FINISHED, true),
            $timeout,
            $interval,
            "Job $id",
        );
    }
}
