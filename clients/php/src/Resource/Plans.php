<?php

declare(strict_types=1);

namespace Opsdeck\Client\Resource;

/**
 * /api/v1/plans: what a customer buys (price, duration, limits, hotspot profile).
 *
 * To create: array{name: string, price: string|float, duration: int|string, currency?: string,
 * rate_limit?: string, uptime_limit?: string, data_limit_bytes?: int, shared_users?: int,
 * profile?: string, active?: bool}; a duration is seconds or text like "30d", "12h", "1w".
 * Prices are answered as decimal strings ("100.00").
 */
final class Plans extends Resource
{
    /**
     * @param array<string, mixed> $plan
     * @return array<string, mixed>
     */
    public function create(array $plan, ?string $idempotencyKey = null): array
    {
        return $this->write('POST', '/api/v1/plans', $plan, $idempotencyKey)->json();
    }

    /** @return list<array<string, mixed>> every plan (not paginated) */
    public function list(): array
    {
        return $this->read('/api/v1/plans')['data'];
    }

    /** @return array<string, mixed> */
    public function get(string $id): array
    {
        return $this->read('/api/v1/plans/' . self::id($id));
    }

    /**
     * Change a plan; subscriptions already made keep their expiry.
     *
     * @param array<string, mixed> $changes the fields to change (`profile: null`: back to the default)
     * @return array<string, mixed>
     */
    public function update(string $id, array $changes, ?string $idempotencyKey = null): array
    {
        return $this->write('PATCH', '/api/v1/plans/' . self::id($id), (object) $changes, $idempotencyKey)->json();
    }
}
