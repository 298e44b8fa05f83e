<?php

declare(strict_types=1);

namespace Opsdeck\Client\Tests\Unit;

use Opsdeck\Client\Client;
use Opsdeck\Client\Exception\OpsdeckException;
use Opsdeck\Client\Exception\RateLimitException;
use Opsdeck\Client\Exception\TransportException;
use Opsdeck\Client\Exception\ValidationException;
use Opsdeck\Client\Response;
use Opsdeck\Client\RetryPolicy;
use Opsdeck\Client\Signer;
use Opsdeck\Client\Tests\Support\FakeTransport;
use PHPUnit\Framework\TestCase;

/** Which failures are retried, after how long, and that each retry is the same write signed anew. */
final class RetryTest extends TestCase
{
    /** @var list<float> */
    private array $slept = [];
    private int $now = 1767225600;

    public function testRateLimitedWriteWaitsRetryAfterAndResendsWithTheSameKeySignedAfresh(): void
    {
        $transport = new FakeTransport([self::tooMany('7'), FakeTransport::json(202, ['id' => 'job_1'])]);

        $job = $this->client($transport)->jobs->submit('system.echo', ['message' => 'hi']);

        self::assertSame('job_1', $job['id']);
        self::assertCount(1, $this->slept);
        self::assertGreaterThanOrEqual(7.0, $this->slept[0]);
        self::assertLessThanOrEqual(7.5, $this->slept[0]);
        [$first, $second] = $transport->sent;
        self::assertSame($first['headers']['idempotency-key'], $second['headers']['idempotency-key']);
        self::assertMatchesRegularExpression('/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/', $first['headers']['idempotency-key']);
        self::assertSame($first['body'], $second['body']);
        self::assertNotSame($first['headers']['opsdeck-timestamp'], $second['headers']['opsdeck-timestamp']);
        foreach ($transport->sent as $sent) {
            $expected = Signer::sign('secret', (int) $sent['headers']['opsdeck-timestamp'], 'POST', '/api/v1/jobs', $sent['body']);
            self::assertSame($expected, $sent['headers']['opsdeck-signature']);
        }
    }

    public function testServerErrorsAreRetriedWithGrowingJitteredBackoff(): void
    {
        $transport = new FakeTransport([self::problem(503), self::problem(500), FakeTransport::json(200, ['id' => 'job_1'])]);

        $this->client($transport)->jobs->get('job_1');

        self::assertCount(3, $transport->sent);
        self::assertCount(2, $this->slept);
        self::assertTrue($this->slept[0] >= 0.25 && $this->slept[0] <= 0.5, (string) $this->slept[0]);
        self::assertTrue($this->slept[1] >= 0.5 && $this->slept[1] <= 1.0, (string) $this->slept[1]);
    }

    public function testConnectionErrorsAreRetried(): void
    {
        $transport = new FakeTransport([new TransportException('connection refused'), FakeTransport::json(200, ['id' => 'job_1'])]);

        self::assertSame('job_1', $this->client($transport)->jobs->get('job_1')['id']);
        self::assertCount(2, $transport->sent);
    }

    public function testTheLastFailureIsThrownOnceAttemptsAreSpent(): void
    {
        $transport = new FakeTransport([new TransportException('reset'), new TransportException('reset'), new TransportException('still reset')]);

        try {
            $this->client($transport)->jobs->get('job_1');
            self::fail('expected a TransportException');
        } catch (TransportException $error) {
            self::assertSame('still reset', $error->getMessage());
            self::assertSame(0, $error->status);
        }
        self::assertCount(3, $transport->sent);
    }

    public function testClientErrorsAreNotRetried(): void
    {
        $transport = new FakeTransport([self::problem(422, ['errors' => ['type' => ['Unknown job type.']]])]);

        $this->expectException(ValidationException::class);
        try {
            $this->client($transport)->jobs->submit('no.such.type');
        } finally {
            self::assertCount(1, $transport->sent);
            self::assertSame([], $this->slept);
        }
    }

    public function testNotImplementedIsThrownAtOnceNotRetried(): void
    {
        $transport = new FakeTransport([self::problem(501), FakeTransport::json(200, ['id' => 'job_1'])]);

        try {
            $this->client($transport)->jobs->get('job_1');
            self::fail('expected an OpsdeckException');
        } catch (OpsdeckException $error) {
            self::assertSame(501, $error->status);
        }
        self::assertCount(1, $transport->sent);
        self::assertSame([], $this->slept);
    }

    public function testWithRetriesOffA429IsThrownWithItsRetryAfter(): void
    {
        $transport = new FakeTransport([self::tooMany('7')]);

        try {
            $this->client($transport, ['max_attempts' => 1])->jobs->get('job_1');
            self::fail('expected a RateLimitException');
        } catch (RateLimitException $error) {
            self::assertSame(429, $error->status);
            self::assertSame(7, $error->retryAfter);
        }
        self::assertSame([], $this->slept);
    }

    public function testARetryAfterBeyondTheCapIsThrownAtOnce(): void
    {
        $transport = new FakeTransport([self::tooMany('120')]);

        $this->expectException(RateLimitException::class);
        try {
            $this->client($transport, ['max_retry_after' => 60])->jobs->get('job_1');
        } finally {
            self::assertSame([], $this->slept);
        }
    }

    public function testPerCallMaxAttemptsOverridesTheClients(): void
    {
        $transport = new FakeTransport([self::problem(500)]);

        $this->expectException(OpsdeckException::class);
        $this->client($transport)->request('GET', '/api/v1/jobs', null, ['max_attempts' => 1]);
    }

    public function testReadsCarryNoIdempotencyKeyAndWritesCarryTheCallersKey(): void
    {
        $transport = new FakeTransport([FakeTransport::json(200, ['id' => 'job_1']), FakeTransport::json(200, ['id' => 'job_1'])]);
        $client = $this->client($transport);

        $client->jobs->get('job_1');
        $client->jobs->cancel('job_1', idempotencyKey: 'cancel-job_1');

        self::assertArrayNotHasKey('idempotency-key', $transport->sent[0]['headers']);
        self::assertSame('cancel-job_1', $transport->sent[1]['headers']['idempotency-key']);
    }

    public function testRetryAfterAsAnHttpDate(): void
    {
        self::assertSame(30, OpsdeckException::retryAfter(gmdate('D, d M Y H:i:s \G\M\T', 1767225630), 1767225600));
        self::assertSame(5, OpsdeckException::retryAfter('5'));
        self::assertNull(OpsdeckException::retryAfter(null));
    }

    public function testPolicyRetriesOnlyWhatIsSafeAndUseful(): void
    {
        $policy = new RetryPolicy(maxAttempts: 3);

        self::assertNull($policy->delay(1, 400));
        self::assertNull($policy->delay(1, 409));
        self::assertNull($policy->delay(1, 501));
        self::assertNull($policy->delay(3, 503), 'attempts spent');
        self::assertNotNull($policy->delay(2, 502));
        self::assertNotNull($policy->delay(1, null));
    }

    private function client(FakeTransport $transport, array $options = []): Client
    {
        return new Client('https://opsdeck.test', 'key', 'secret', $options + [
            'transport' => $transport,
            'sleep' => function (float $seconds): void {
                $this->slept[] = $seconds;
            },
            'clock' => fn (): int => $this->now++,
        ]);
    }

    private static function tooMany(string $retryAfter): Response
    {
        return self::problem(429, [], ['retry-after' => $retryAfter]);
    }

    private static function problem(int $status, array $extra = [], array $headers = []): Response
    {
        $body = ['type' => 'https://opsdeck.dev/problems/x', 'title' => 'Problem', 'status' => $status, 'detail' => 'Something.'] + $extra;

        return new Response($status, $headers + ['content-type' => 'application/problem+json'], json_encode($body));
    }
}
