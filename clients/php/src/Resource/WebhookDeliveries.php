<?php

declare(strict_types=1);

namespace Opsdeck\Client\Resource;

/**
 * /api/v1/webhook-deliveries: one event sent to one endpoint, with every attempt.
 */
final class WebhookDeliveries extends Resource
{
    /** @return array<string, mixed> the delivery with its `attempt_log` */
    public function get(string $id): array
    {
        return $this->read('/api/v1/webhook-deliveries/' . self::id($id));
    }

    /**
     * Send a delivery again now (ConflictException when its endpoint is disabled or deleted).
     *
     * @return array<string, mixed>
     */
    public function retry(string $id, ?string $idempotencyKey = null): array
    {
        return $this->write('POST', '/api/v1/webhook-deliveries/' . self::id($id) . '/retry', null, $idempotencyKey)->json();
    }
}
