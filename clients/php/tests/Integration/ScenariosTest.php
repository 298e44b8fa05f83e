<?php

declare(strict_types=1);

namespace Opsdeck\Client\Tests\Integration;

use Opsdeck\Client\Exception\NotFoundException;
use Opsdeck\Client\Exception\ValidationException;
use Opsdeck\Client\Response;
use Opsdeck\Client\Tests\Support\LiveTestCase;
use Opsdeck\Client\Transport\CurlTransport;
use Opsdeck\Client\Transport\Transport;

/** clients/SCENARIOS.md 1–5, 8 and 10 against a live Opsdeck (6, 7 and 9 have their own files). */
final class ScenariosTest extends LiveTestCase
{
    /** 1. A job, submitted and awaited. */
    public function testJobSubmittedAndAwaited(): void
    {
        $message = self::unique('echo');
        $client = self::client();

        $job = $client->jobs->submit('system.echo', ['message' => $message]);
        $done = $client->jobs->wait($job['id'], timeout: 30);

        self::assertSame('succeeded', $done['status'], (string) json_encode($done));
        self::assertSame(['message' => $message], $done['result']);
    }

    /** 2. A retry with the same Idempotency-Key is answered with the first job, flagged replayed. */
    public function testRetryWithTheSameIdempotencyKey(): void
    {
        $client = self::client();
        $key = self::unique('order');

        $first = $client->jobs->submit('system.echo', ['message' => 'once'], idempotencyKey: $key);
        $second = $client->jobs->submit('system.echo', ['message' => 'once'], idempotencyKey: $key);

        self::assertSame($first['id'], $second['id']);
        self::assertFalse($first['replayed']);
        self::assertTrue($second['replayed']);
    }

    /** 3. Batches: three jobs in order, the same three again replayed; two events. */
    public function testBatches(): void
    {
        $client = self::client();
        $jobs = array_map(
            static fn (int $n): array => ['type' => 'system.echo', 'payload' => ['message' => "item $n"], 'idempotency_key' => self::unique("batch-$n")],
            [1, 2, 3],
        );

        $first = $client->jobs->submitMany($jobs);
        $again = $client->jobs->submitMany($jobs);
        $events = $client->events->publishMany([
            ['type' => 'php.batch', 'payload' => ['n' => 1]],
            ['type' => 'php.batch', 'payload' => ['n' => 2]],
        ]);

        self::assertCount(3, $first);
        self::assertSame(['item 1', 'item 2', 'item 3'], array_map(static fn (array $j): string => $j['payload']['message'], $first));
        self::assertSame([false, false, false], array_column($first, 'replayed'));
        self::assertSame(array_column($first, 'id'), array_column($again, 'id'));
        self::assertSame([true, true, true], array_column($again, 'replayed'));
        self::assertCount(2, $events);
        self::assertSame([['n' => 1], ['n' => 2]], array_column($events, 'payload'));
    }

    /** 4. The list iterator with a page size of 2: every job once, newest first, three pages or more. */
    public function testListingWithTheIterator(): void
    {
        $pages = 0;
        $counting = new class (new CurlTransport(), $pages) implements Transport {
            public function __construct(private Transport $inner, private int &$pages)
            {
            }

            public function send(string $method, string $url, array $headers, string $body, float $timeout, float $connectTimeout, $sink = null): Response
            {
                if ($method === 'GET' && str_contains($url, '/api/v1/jobs?')) {
                    $this->pages++;
                }

                return $this->inner->send($method, $url, $headers, $body, $timeout, $connectTimeout, $sink);
            }
        };
        $client = self::client(['transport' => $counting]);
        $submitted = array_column($client->jobs->submitMany(array_fill(0, 5, ['type' => 'system.echo', 'payload' => ['message' => 'listed']])), 'id');

        $seen = iterator_to_array($client->jobs->list(pageSize: 2));

        $ids = array_column($seen, 'id');
        self::assertSame(array_unique($ids), $ids, 'every job once');
        self::assertSame([], array_diff($submitted, $ids));
        $created = array_column($seen, 'created_at');
        $sorted = $created;
        rsort($sorted);
        self::assertSame($sorted, $created, 'newest first');
        self::assertGreaterThanOrEqual(3, $pages);
        self::assertSame((int) ceil(count($ids) / 2), $pages);
    }

    /** 5. Cancel a delayed job, then retry it. */
    public function testCancelAndRetry(): void
    {
        $client = self::client();
        $job = $client->jobs->submit('system.echo', ['message' => 'later'], ['delay_seconds' => 3600]);

        $cancelled = $client->jobs->cancel($job['id']);
        $retried = $client->jobs->retry($job['id']);

        self::assertSame('cancelled', $cancelled['status']);
        self::assertContains($retried['status'], ['pending', 'queued']);
    }

    /** 8. Errors as values: 422 with field errors, 404; both with type, title and detail. */
    public function testErrorsAsValues(): void
    {
        $client = self::client();

        try {
            $client->jobs->submit('no.such.type', ['x' => 1]);
            self::fail('expected a ValidationException');
        } catch (ValidationException $invalid) {
            self::assertSame(422, $invalid->status);
            self::assertArrayHasKey('type', $invalid->errors);
            self::assertNotEmpty($invalid->type);
            self::assertNotEmpty($invalid->title);
            self::assertNotEmpty($invalid->detail);
        }
        try {
            $client->jobs->get('job_does_not_exist');
            self::fail('expected a NotFoundException');
        } catch (NotFoundException $missing) {
            self::assertSame(404, $missing->status);
            self::assertNotEmpty($missing->type);
            self::assertNotEmpty($missing->title);
            self::assertNotEmpty($missing->detail);
        }
    }

    /** 10. The generic call reaches the OpenAPI document. */
    public function testTheGenericCall(): void
    {
        $response = self::client()->request('GET', '/api/v1/openapi.json');

        self::assertSame(200, $response->status);
        self::assertStringStartsWith('3.', $response->json()['openapi']);
    }
}
