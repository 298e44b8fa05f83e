<?php

declare(strict_types=1);

namespace Opsdeck\Client\Resource;

/**
 * /api/v1/vouchers: subscriptions with generated credentials, to print or hand out.
 */
final class Vouchers extends Resource
{
    /**
     * Generate `count` vouchers for a plan on a router.
     *
     * @param array{prefix?: string, length?: int, charset?: string, same_password?: bool} $options
     * @return list<array<string, mixed>> the subscriptions made, with username and password
     */
    public function create(string $planId, string $routerId, int $count, array $options = [], ?string $idempotencyKey = null): array
    {
        $body = ['plan_id' => $planId, 'router_id' => $routerId, 'count' => $count] + $options;

        return $this->write('POST', '/api/v1/vouchers', $body, $idempotencyKey)->json()['data'];
    }
}
