<?php

declare(strict_types=1);

namespace Opsdeck\Client\Resource;

use Opsdeck\Client\Json;

/**
 * /api/v1/events: publish domain events, fanned out to the subscribed webhook endpoints.
 *
 * An event, as answered: array{id: string, client_id: ?string, type: string, payload: mixed,
 * created_at: string}; `get` adds its `deliveries`.
 */
final class Events extends Resource
{
    /**
     * @param mixed       $payload any JSON (an empty PHP array is sent as `{}`)
     * @param string|null $id      your own event id: publishing it again answers with the first
     * @return array<string, mixed> the event, plus `replayed` (answered from an earlier publish)
     */
    public function publish(string $type, mixed $payload, ?string $id = null, ?string $idempotencyKey = null): array
    {
        $body = ['type' => $type, 'payload' => Json::object($payload)] + ($id === null ? [] : ['id' => $id]);
        $response = $this->write('POST', '/api/v1/events', $body, $idempotencyKey);

        return $response->json() + ['replayed' => $response->replayed() || $response->status === 200];
    }

    /**
     * Publish many events through the bulk call, split as `Jobs::submitMany` splits.
     *
     * @param list<array{type: string, payload: mixed, id?: string}> $events
     * @return list<array<string, mixed>> the events in order, each with `replayed`
     */
    public function publishMany(array $events, int $batchSize = 1000, int $batchBytes = 4 << 20): array
    {
        $events = array_map(static fn (array $event): array => array_key_exists('payload', $event) ? ['payload' => Json::object($event['payload'])] + $event : $event, $events);
        $answers = [];
        foreach (self::chunks($events, $batchSize, $batchBytes) as $chunk) {
            array_push($answers, ...$this->write('POST', '/api/v1/events/batch', ['events' => $chunk])->json()['data']);
        }

        return $answers;
    }

    /**
     * An event by Opsdeck's id or your own, with its deliveries.
     *
     * @return array<string, mixed>
     */
    public function get(string $id): array
    {
        return $this->read('/api/v1/events/' . self::id($id));
    }
}
