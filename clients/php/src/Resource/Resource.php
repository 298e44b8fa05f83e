<?php

declare(strict_types=1);

namespace Opsdeck\Client\Resource;

use Opsdeck\Client\Client;
use Opsdeck\Client\Exception\TimeoutException;
use Opsdeck\Client\Json;
use Opsdeck\Client\Response;

/**
 * What the typed calls share: JSON in and out, ids in paths, cursor pages, polling.
 */
abstract class Resource
{
    public function __construct(protected readonly Client $client)
    {
    }

    /**
     * @param array<string, scalar|null> $query
     * @return array<string, mixed>
     */
    protected function read(string $path, array $query = []): array
    {
        return $this->client->request('GET', $path, null, ['query' => $query])->json();
    }

    /** A write; `$idempotencyKey` null: a random one (the same on each retry of this call). */
    protected function write(string $method, string $path, mixed $body = null, ?string $idempotencyKey = null): Response
    {
        return $this->client->request($method, $path, $body, ['idempotency_key' => $idempotencyKey]);
    }

    /**
     * Every item of a cursor-paginated list, page by page as the iteration reaches them.
     *
     * @param array<string, scalar|null> $filters
     * @return \Generator<int, array<string, mixed>>
     */
    protected function paginate(string $path, array $filters, int $pageSize): \Generator
    {
        $query = ['limit' => $pageSize] + $filters;
        do {
            $page = $this->read($path, $query);
            foreach ($page['data'] as $item) {
                yield $item; // generator keys run on across pages, so iterator_to_array keeps all
            }
            $query['cursor'] = $page['next_cursor'] ?? null;
        } while ($query['cursor'] !== null);
    }

    /**
     * Read `$path` until `$done` says so, then return the last reading.
     *
     * @param callable(array<string, mixed>): bool $done
     * @return array<string, mixed>
     *
     * @throws TimeoutException
     */
    protected function poll(string $path, callable $done, float $timeout, float $interval, string $what): array
    {
        $deadline = microtime(true) + $timeout;
        while (true) {
            $item = $this->read($path);
            if ($done($item)) {
                return $item;
            }
            if (microtime(true) + $interval > $deadline) {
                throw new TimeoutException(sprintf('%s is still %s after %.1f s', $what, $item['status'] ?? 'unfinished', $timeout));
            }
            usleep((int) ($interval * 1_000_000));
        }
    }

    /** One path segment: an id goes in percent-encoded, so it cannot reach another path. */
    protected static function id(string $id): string
    {
        return rawurlencode($id);
    }

    /**
     * Split a long list into bulk calls: at most `$size` items and about `$maxBytes` of JSON a
     * call, under the server's API_BATCH_MAX_ITEMS and API_BATCH_MAX_BYTES.
     *
     * @param list<mixed> $items
     * @return list<list<mixed>>
     */
    protected static function chunks(array $items, int $size, int $maxBytes): array
    {
        $chunks = [];
        $chunk = [];
        $used = 0;
        foreach ($items as $item) {
            $length = strlen(Json::encode($item)) + 1;
            if ($chunk !== [] && (count($chunk) === $size || $used + $length > $maxBytes)) {
                $chunks[] = $chunk;
                [$chunk, $used] = [[], 0];
            }
            $chunk[] = $item;
            $used += $length;
        }
        if ($chunk !== []) {
            $chunks[] = $chunk;
        }

        return $chunks;
    }
}
