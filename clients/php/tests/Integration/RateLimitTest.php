<?php

declare(strict_types=1);

namespace Opsdeck\Client\Tests\Integration;

use Opsdeck\Client\Exception\RateLimitException;
use Opsdeck\Client\Tests\Support\LiveTestCase;

/** clients/SCENARIOS.md 9: 429 thrown with retries off, waited out with them on. */
final class RateLimitTest extends LiveTestCase
{
    public function testA429IsRetriedAfterRetryAfter(): void
    {
        $limit = (int) getenv('OPSDECK_LIMIT');
        $client = self::limitedClient();
        try {
            for ($n = 0; $n < $limit; $n++) {
                $client->request('GET', '/api/v1/jobs', null, ['query' => ['limit' => 1], 'max_attempts' => 1]);
            }
        } catch (RateLimitException) {
            // Spent already (a run a moment ago on the same server): that is the state wanted.
        }

        try {
            self::limitedClient(['max_attempts' => 1])->jobs->get('job_does_not_exist');
            self::fail('expected a RateLimitException');
        } catch (RateLimitException $limited) {
            self::assertSame(429, $limited->status);
            self::assertGreaterThanOrEqual(1, $limited->retryAfter);
            self::assertLessThanOrEqual(61, $limited->retryAfter);
        }

        $started = microtime(true);
        $page = $client->request('GET', '/api/v1/jobs', null, ['query' => ['limit' => 1]]);
        $waited = microtime(true) - $started;

        self::assertSame(200, $page->status);
        self::assertGreaterThanOrEqual(1.0, $waited, 'the retry waited for the window');
        self::assertLessThanOrEqual(75.0, $waited);
    }
}
