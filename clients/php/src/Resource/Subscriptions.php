<?php

declare(strict_types=1);

namespace Opsdeck\Client\Resource;

/**
 * /api/v1/subscriptions: a hotspot user on a router for a plan's duration.
 *
 * To create by hand (no payment): array{plan_id: string, router_id: string, phone?: string,
 * mac?: string, username?: string, password?: string}. Answers carry the customer's
 * `username` and `password`, `status` (pending, provisioning, active, expired, failed,
 * cancelled) and `expires_at`.
 */
final class Subscriptions extends Resource
{
    /**
     * @param array<string, mixed> $subscription
     * @return array<string, mixed>
     */
    public function create(array $subscription, ?string $idempotencyKey = null): array
    {
        return $this->write('POST', '/api/v1/subscriptions', $subscription, $idempotencyKey)->json();
    }

    /**
     * Every subscription, newest first, a page at a time as you iterate.
     *
     * @return \Generator<int, array<string, mixed>>
     */
    public function list(?string $status = null, int $pageSize = 50): \Generator
    {
        return $this->paginate('/api/v1/subscriptions', ['status' => $status], $pageSize);
    }

    /** @return array<string, mixed> */
    public function get(string $id): array
    {
        return $this->read('/api/v1/subscriptions/' . self::id($id));
    }

    /**
     * Push the expiry back.
     *
     * @param int|string $duration seconds, or text like "30d", "12h", "90m", "1w"
     * @return array<string, mixed>
     */
    public function extend(string $id, int|string $duration, ?string $idempotencyKey = null): array
    {
        return $this->action($id, 'extend', ['duration' => $duration], $idempotencyKey);
    }

    /**
     * Remove the hotspot user now.
     *
     * @return array<string, mixed>
     */
    public function expire(string $id, ?string $idempotencyKey = null): array
    {
        return $this->action($id, 'expire', null, $idempotencyKey);
    }

    /**
     * Push the hotspot user to the router again.
     *
     * @return array<string, mixed>
     */
    public function reprovision(string $id, ?string $idempotencyKey = null): array
    {
        return $this->action($id, 'reprovision', null, $idempotencyKey);
    }

    /**
     * @param array<string, mixed>|null $body
     * @return array<string, mixed>
     */
    private function action(string $id, string $action, ?array $body, ?string $idempotencyKey): array
    {
        return $this->write('POST', '/api/v1/subscriptions/' . self::id($id) . '/' . $action, $body, $idempotencyKey)->json();
    }
}
