<?php

declare(strict_types=1);

namespace Opsdeck\Client\Tests\Unit;

use Opsdeck\Client\Client;
use Opsdeck\Client\Exception\AuthenticationException;
use Opsdeck\Client\Exception\ConflictException;
use Opsdeck\Client\Exception\NotFoundException;
use Opsdeck\Client\Exception\OpsdeckException;
use Opsdeck\Client\Exception\ValidationException;
use Opsdeck\Client\Response;
use Opsdeck\Client\Tests\Support\FakeTransport;
use PHPUnit\Framework\TestCase;

/** Requests as the API reads them, answers as callers get them. */
final class ClientTest extends TestCase
{
    public function testAnEmptyPayloadIsSentAsAJsonObject(): void
    {
        $transport = new FakeTransport([FakeTransport::json(202, ['id' => 'job_1']), FakeTransport::json(202, ['data' => []])]);
        $client = self::client($transport);

        $client->jobs->submit('system.echo');
        $client->jobs->submitMany([['type' => 'system.echo', 'payload' => []]]);

        self::assertSame('{"type":"system.echo","payload":{}}', $transport->sent[0]['body']);
        self::assertSame('{"jobs":[{"payload":{},"type":"system.echo"}]}', $transport->sent[1]['body']);
        self::assertSame('application/json', $transport->sent[0]['headers']['content-type']);
    }

    public function testSubmitFlagsAReplayFromTheHeaderOrAKnownJobKey(): void
    {
        $transport = new FakeTransport([
            FakeTransport::json(202, ['id' => 'job_1']),
            FakeTransport::json(202, ['id' => 'job_1'], ['idempotent-replayed' => 'true']),
            FakeTransport::json(200, ['id' => 'job_1']),
        ]);
        $client = self::client($transport);

        self::assertFalse($client->jobs->submit('system.echo')['replayed']);
        self::assertTrue($client->jobs->submit('system.echo')['replayed']);
        self::assertTrue($client->jobs->submit('system.echo', [], ['idempotency_key' => 'order-1'])['replayed']);
    }

    public function testListFollowsCursorsAndKeepsEveryItem(): void
    {
        $transport = new FakeTransport([
            FakeTransport::json(200, ['data' => [['id' => 'a'], ['id' => 'b']], 'next_cursor' => 'c2=']),
            FakeTransport::json(200, ['data' => [['id' => 'c']], 'next_cursor' => null]),
        ]);

        $jobs = iterator_to_array(self::client($transport)->jobs->list(pageSize: 2));

        self::assertSame(['a', 'b', 'c'], array_column($jobs, 'id'));
        self::assertSame('https://opsdeck.test/api/v1/jobs?limit=2', $transport->sent[0]['url']);
        self::assertSame('https://opsdeck.test/api/v1/jobs?limit=2&cursor=c2%3D', $transport->sent[1]['url']);
    }

    public function testABasePathIsPartOfTheSignedTargetAndIdsStayInTheirSegment(): void
    {
        $transport = new FakeTransport([FakeTransport::json(200, ['id' => 'x'])]);
        $client = new Client('https://example.test/opsdeck/', 'key', 'secret', ['transport' => $transport, 'clock' => fn (): int => 1]);

        $client->jobs->get('../scans/x y');

        self::assertSame('https://example.test/opsdeck/api/v1/jobs/..%2Fscans%2Fx%20y', $transport->sent[0]['url']);
        $expected = 'v1=' . hash_hmac('sha256', '1.GET./opsdeck/api/v1/jobs/..%2Fscans%2Fx%20y.', 'secret');
        self::assertSame($expected, $transport->sent[0]['headers']['opsdeck-signature']);
    }

    public function testBooleansInQueriesAreTrueOrFalse(): void
    {
        $transport = new FakeTransport([new Response(200, [], '{}')]);

        self::client($transport)->request('GET', '/readyz', null, ['query' => ['deep' => true, 'skip' => null]]);

        self::assertSame('https://opsdeck.test/readyz?deep=true', $transport->sent[0]['url']);
    }

    /** @dataProvider errorStatuses */
    public function testErrorAnswersBecomeTheirExceptionWithTheProblemsFields(int $status, string $class): void
    {
        $problem = ['type' => 'https://opsdeck.dev/problems/p', 'title' => 'T', 'status' => $status, 'detail' => 'D', 'errors' => ['type' => ['Unknown.']], 'scan_id' => 'scn_1'];
        $transport = new FakeTransport([new Response($status, ['content-type' => 'application/problem+json'], json_encode($problem))]);

        try {
            self::client($transport)->request('GET', '/api/v1/jobs');
            self::fail('expected an exception');
        } catch (OpsdeckException $error) {
            self::assertInstanceOf($class, $error);
            self::assertSame([$status, 'https://opsdeck.dev/problems/p', 'T', 'D'], [$error->status, $error->type, $error->title, $error->detail]);
            self::assertSame(['type' => ['Unknown.']], $error->errors);
            self::assertSame('scn_1', $error->problem['scan_id']);
            self::assertSame("Opsdeck answered $status T: D", $error->getMessage());
        }
    }

    public static function errorStatuses(): array
    {
        return [
            '401' => [401, AuthenticationException::class],
            '404' => [404, NotFoundException::class],
            '409' => [409, ConflictException::class],
            '422' => [422, ValidationException::class],
            '400' => [400, OpsdeckException::class],
        ];
    }

    public function testAnErrorThatIsNotJsonKeepsItsStatus(): void
    {
        $transport = new FakeTransport([new Response(502, ['content-type' => 'text/html'], '<html>Bad gateway</html>')]);

        try {
            self::client($transport)->request('GET', '/api/v1/jobs', null, ['max_attempts' => 1]);
            self::fail('expected an exception');
        } catch (OpsdeckException $error) {
            self::assertSame(502, $error->status);
            self::assertSame('<html>Bad gateway</html>', $error->response?->body);
        }
    }

    public function testSubmitManySplitsByCountAndBytes(): void
    {
        $jobs = array_fill(0, 3, ['type' => 'system.echo', 'payload' => ['message' => str_repeat('x', 100)]]);
        $sizes = static fn (FakeTransport $t): array => array_map(static fn (array $s): int => count(json_decode($s['body'], true)['jobs']), $t->sent);

        $byCount = new FakeTransport(array_fill(0, 2, FakeTransport::json(202, ['data' => [['id' => 'j']]])));
        self::client($byCount)->jobs->submitMany($jobs, batchSize: 2, batchBytes: 4000);
        $byBytes = new FakeTransport(array_fill(0, 3, FakeTransport::json(202, ['data' => [['id' => 'j']]])));
        self::client($byBytes)->jobs->submitMany($jobs, batchSize: 10, batchBytes: 250);

        self::assertSame([2, 1], $sizes($byCount));
        self::assertSame([1, 1, 1], $sizes($byBytes));
    }

    public function testDownloadToWritesOnlyTheSuccessfulAnswer(): void
    {
        $transport = new FakeTransport([
            new Response(503, [], '{"title":"Unavailable"}'),
            new Response(200, ['content-type' => 'application/octet-stream'], "file\x00bytes"),
        ]);
        $stream = fopen('php://memory', 'w+b');

        $written = self::client($transport)->scans->downloadTo('scn_1', $stream);

        rewind($stream);
        self::assertSame("file\x00bytes", stream_get_contents($stream));
        self::assertSame(10, $written);
    }

    private static function client(FakeTransport $transport): Client
    {
        return new Client('https://opsdeck.test', 'key', 'secret', ['transport' => $transport, 'sleep' => static function (float $s): void {
        }]);
    }
}
