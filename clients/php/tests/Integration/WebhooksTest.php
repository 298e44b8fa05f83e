<?php

declare(strict_types=1);

namespace Opsdeck\Client\Tests\Integration;

use Opsdeck\Client\Exception\WebhookVerificationException;
use Opsdeck\Client\Tests\Support\LiveTestCase;
use Opsdeck\Client\Tests\Support\WebhookReceiver;
use Opsdeck\Client\Webhook;

/** clients/SCENARIOS.md 7: deliveries received on 127.0.0.1 and verified, across a secret rotation. */
final class WebhooksTest extends LiveTestCase
{
    private const OTHER_SECRET = 'whsec_b3BzZGVjay10ZXN0LXdlYmhvb2stbm90LXlvdXJzISE=';

    public function testWebhooksReceivedAndVerified(): void
    {
        $client = self::client();
        $receiver = new WebhookReceiver();
        $type = self::unique('php.order.paid');
        $endpoint = $client->webhookEndpoints->create($receiver->url(), ['event_types' => [$type], 'description' => 'PHP client scenario 7']);
        $secret = $endpoint['secret'];
        self::assertStringStartsWith('whsec_', $secret);

        $event = $client->events->publish($type, ['order' => 7, 'amount' => '100.00']);
        $delivery = $receiver->receiveEvent($event['id']);

        $payload = Webhook::verify($secret, $delivery['headers'], $delivery['body']);
        self::assertSame($type, $payload['type']);
        self::assertSame(['order' => 7, 'amount' => '100.00'], $payload['data']);
        self::assertRefused(self::OTHER_SECRET, $delivery['headers'], $delivery['body']);
        self::assertRefused($secret, $delivery['headers'], str_replace('100.00', '900.00', $delivery['body']));

        $rotated = $client->webhookEndpoints->rotateSecret($endpoint['id']);
        $next = $client->events->publish($type, ['order' => 8]);
        $delivery = $receiver->receiveEvent($next['id']);

        self::assertCount(2, explode(' ', $delivery['headers']['webhook-signature']));
        self::assertSame(['order' => 8], Webhook::verify($rotated['secret'], $delivery['headers'], $delivery['body'])['data']);
        self::assertSame(['order' => 8], Webhook::verify($secret, $delivery['headers'], $delivery['body'])['data']);
        self::assertRefused(self::OTHER_SECRET, $delivery['headers'], $delivery['body']);

        $client->webhookEndpoints->delete($endpoint['id']);
    }

    private static function assertRefused(string $secret, array $headers, string $body): void
    {
        try {
            Webhook::verify($secret, $headers, $body);
            self::fail('a delivery verified that should have been refused');
        } catch (WebhookVerificationException $refused) {
            self::assertNotSame('', $refused->getMessage());
        }
    }
}
