<?php

declare(strict_types=1);

namespace Opsdeck\Client\Resource;

/**
 * /api/v1/routers: the MikroTik routers Opsdeck provisions hotspot users on.
 *
 * To create: array{name: string, host: string, username: string, password: string,
 * port?: int, tls?: bool, tls_verify?: bool, hotspot_server?: string}. The password is
 * stored encrypted and never answered.
 */
final class Routers extends Resource
{
    /**
     * @param array<string, mixed> $router
     * @return array<string, mixed>
     */
    public function create(array $router, ?string $idempotencyKey = null): array
    {
        return $this->write('POST', '/api/v1/routers', $router, $idempotencyKey)->json();
    }

    /** @return list<array<string, mixed>> every router with its last check (not paginated) */
    public function list(): array
    {
        return $this->read('/api/v1/routers')['data'];
    }

    /** @return array<string, mixed> status, version, uptime, CPU load, free memory, last error */
    public function get(string $id): array
    {
        return $this->read('/api/v1/routers/' . self::id($id));
    }

    /**
     * @param array<string, mixed> $changes the fields to change
     * @return array<string, mixed>
     */
    public function update(string $id, array $changes, ?string $idempotencyKey = null): array
    {
        return $this->write('PATCH', '/api/v1/routers/' . self::id($id), (object) $changes, $idempotencyKey)->json();
    }

    /** Remove a router (its history stays; no more checks or provisioning). */
    public function delete(string $id, ?string $idempotencyKey = null): void
    {
        $this->write('DELETE', '/api/v1/routers/' . self::id($id), null, $idempotencyKey);
    }
}
