<?php

declare(strict_types=1);

namespace Opsdeck\Client\Tests\Unit;

use Opsdeck\Client\Client;
use Opsdeck\Client\Exception\WebhookVerificationException;
use Opsdeck\Client\Multipart;
use Opsdeck\Client\Response;
use Opsdeck\Client\Signer;
use Opsdeck\Client\Tests\Support\FakeTransport;
use Opsdeck\Client\Tests\Support\Vectors;
use Opsdeck\Client\Webhook;
use PHPUnit\Framework\TestCase;

/** Every vector of clients/test-vectors.json, signed and verified as the server does. */
final class VectorsTest extends TestCase
{
    /** @dataProvider requestVectors */
    public function testSignerSignsEachRequestVector(array $vector): void
    {
        $body = base64_decode($vector['body_base64'], true);
        $signature = Signer::sign($vector['secret'], $vector['timestamp'], $vector['method'], $vector['path'], $body);

        self::assertSame($vector['signature'], $signature);
    }

    /** @dataProvider requestVectors */
    public function testClientSendsEachRequestVectorsSignatureOnTheWire(array $vector): void
    {
        $transport = new FakeTransport([new Response(200, [], '{}')]);
        $client = new Client('https://opsdeck.test', $vector['key_id'], $vector['secret'], [
            'transport' => $transport,
            'clock' => static fn (): int => $vector['timestamp'],
        ]);
        $body = base64_decode($vector['body_base64'], true);

        $client->request($vector['method'], $vector['path'], $body === '' ? null : $body, ['content_type' => $vector['content_type'] ?? null]);

        $sent = $transport->sent[0];
        self::assertSame('https://opsdeck.test' . $vector['path'], $sent['url']);
        self::assertSame($body, $sent['body']);
        self::assertSame($vector['key_id'], $sent['headers']['opsdeck-key']);
        self::assertSame((string) $vector['timestamp'], $sent['headers']['opsdeck-timestamp']);
        self::assertSame($vector['signature'], $sent['headers']['opsdeck-signature']);
    }

    public function testTypedCallsBuildTheVectorsBytes(): void
    {
        $vectors = Vectors::load()['requests'];
        $transport = new FakeTransport([FakeTransport::json(202, ['id' => 'job_1']), FakeTransport::json(200, ['data' => [], 'next_cursor' => null])]);
        $client = new Client('https://opsdeck.test', 'key', 'secret', ['transport' => $transport]);

        $client->jobs->submit('system.echo', ['message' => 'Habari, Wanjikũ — 20 € ✓']);
        iterator_to_array($client->jobs->list(status: 'dead', type: 'email.send', pageSize: 2));

        self::assertSame(base64_decode($vectors[1]['body_base64']), $transport->sent[0]['body'], 'JSON as the vector: UTF-8 and slashes unescaped');
        self::assertSame('https://opsdeck.test/api/v1/jobs?limit=2&status=dead&type=email.send', $transport->sent[1]['url']);
    }

    public function testMultipartBodyMatchesTheUploadVector(): void
    {
        $vector = array_values(array_filter(Vectors::load()['requests'], static fn (array $v): bool => $v['path'] === '/api/v1/scans'))[0];
        $body = base64_decode($vector['body_base64'], true);
        $boundary = substr($vector['content_type'], strlen('multipart/form-data; boundary='));
        $start = strpos($body, "\r\n\r\n") + 4;
        $file = substr($body, $start, strrpos($body, "\r\n--$boundary--") - $start);

        self::assertSame([$vector['content_type'], $body], Multipart::file('file', 'invoice.pdf', $file, $boundary));
    }

    /** @dataProvider webhookVectors */
    public function testWebhookVerifiesEachVector(array $vector): void
    {
        $body = base64_decode($vector['body_base64'], true);
        if (!$vector['valid']) {
            $this->expectException(WebhookVerificationException::class);
        }

        $payload = Webhook::verify($vector['secret'], $vector['headers'], $body, $vector['tolerance'], $vector['now']);

        self::assertSame(json_decode($body, true), $payload);
    }

    public static function requestVectors(): array
    {
        return Vectors::rows('requests');
    }

    public static function webhookVectors(): array
    {
        return Vectors::rows('webhooks');
    }
}
