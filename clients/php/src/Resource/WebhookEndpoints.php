<?php

declare(strict_types=1);

namespace Opsdeck\Client\Resource;

/**
 * /api/v1/webhook-endpoints: where Opsdeck delivers your events (Standard Webhooks).
 *
 * An endpoint, as answered: array{id: string, url: string, description: string,
 * event_types: ?list<string>, rate_limit_per_second: ?int, enabled: bool,
 * disabled_reason: ?string, last_success_at: ?string, failing_since: ?string,
 * created_at: string, updated_at: string}.
 */
final class WebhookEndpoints extends Resource
{
    /**
     * @param array{description?: string, event_types?: list<string>|null, rate_limit_per_second?: int|null, enabled?: bool} $fields
     *     event_types: the exact types delivered (null: every type)
     * @return array<string, mixed> the endpoint with its `secret` ("whsec_…"): shown this once, keep it
     */
    public function create(string $url, array $fields = [], ?string $idempotencyKey = null): array
    {
        return $this->write('POST', '/api/v1/webhook-endpoints', ['url' => $url] + $fields, $idempotencyKey)->json();
    }

    /** @return list<array<string, mixed>> every endpoint (not paginated) */
    public function list(): array
    {
        return $this->read('/api/v1/webhook-endpoints')['data'];
    }

    /** @return array<string, mixed> */
    public function get(string $id): array
    {
        return $this->read('/api/v1/webhook-endpoints/' . self::id($id));
    }

    /**
     * Change the fields given (url, description, event_types, rate_limit_per_second, enabled).
     *
     * @param array<string, mixed> $changes
     * @return array<string, mixed>
     */
    public function update(string $id, array $changes, ?string $idempotencyKey = null): array
    {
        return $this->write('PATCH', '/api/v1/webhook-endpoints/' . self::id($id), (object) $changes, $idempotencyKey)->json();
    }

    /** Delete an endpoint (its delivery history stays). */
    public function delete(string $id, ?string $idempotencyKey = null): void
    {
        $this->write('DELETE', '/api/v1/webhook-endpoints/' . self::id($id), null, $idempotencyKey);
    }

    /**
     * A new signing secret; the old one keeps signing alongside it until `previous_secret_expires_at`.
     *
     * @return array<string, mixed> the endpoint with `secret` and `previous_secret_expires_at`
     */
    public function rotateSecret(string $id, ?string $idempotencyKey = null): array
    {
        return $this->write('POST', '/api/v1/webhook-endpoints/' . self::id($id) . '/rotate-secret', null, $idempotencyKey)->json();
    }

    /**
     * Send again every dead or cancelled delivery created in [since, until).
     *
     * @return array{requeued: int}
     */
    public function recover(string $id, \DateTimeInterface|string $since, \DateTimeInterface|string|null $until = null, ?string $idempotencyKey = null): array
    {
        $body = ['since' => self::time($since), 'until' => $until === null ? null : self::time($until)];

        return $this->write('POST', '/api/v1/webhook-endpoints/' . self::id($id) . '/recover', $body, $idempotencyKey)->json();
    }

    /**
     * The endpoint's deliveries, newest first, a page at a time as you iterate.
     *
     * @param string|null $status pending, retrying, succeeded, dead or cancelled
     * @return \Generator<int, array<string, mixed>>
     */
    public function deliveries(string $id, ?string $status = null, int $pageSize = 50): \Generator
    {
        return $this->paginate('/api/v1/webhook-endpoints/' . self::id($id) . '/deliveries', ['status' => $status], $pageSize);
    }

    private static function time(\DateTimeInterface|string $at): string
    {
        return $at instanceof \DateTimeInterface ? $at->format(\DateTimeInterface::RFC3339) : $at;
    }
}
