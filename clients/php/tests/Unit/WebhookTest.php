<?php

declare(strict_types=1);

namespace Opsdeck\Client\Tests\Unit;

use Opsdeck\Client\Exception\WebhookVerificationException;
use Opsdeck\Client\Webhook;
use PHPUnit\Framework\TestCase;

/** What the vectors do not cover: how frameworks hand headers over, and malformed input. */
final class WebhookTest extends TestCase
{
    private const SECRET = 'whsec_b3BzZGVjay10ZXN0LXdlYmhvb2stc2VjcmV0LW5ldyE=';

    public function testHeaderNamesInAnyCaseAndAsListsOfValues(): void
    {
        $body = '{"id":"evt_1","type":"order.paid","data":{}}';
        $signature = self::sign('evt_1', '1767225600', $body);

        $fromGetAllHeaders = ['Webhook-Id' => 'evt_1', 'Webhook-Timestamp' => '1767225600', 'Webhook-Signature' => $signature];
        $fromLaravel = ['webhook-id' => ['evt_1'], 'webhook-timestamp' => ['1767225600'], 'webhook-signature' => [$signature]];

        self::assertSame('order.paid', Webhook::verify(self::SECRET, $fromGetAllHeaders, $body, now: 1767225600)['type']);
        self::assertSame('order.paid', Webhook::verify(self::SECRET, $fromLaravel, $body, now: 1767225600)['type']);
    }

    public function testSeveralSecretsDuringARotation(): void
    {
        $other = 'whsec_' . base64_encode('another-secret-of-this-endpoint!');
        $body = '{"id":"evt_2","type":"order.paid","data":{}}';
        $headers = ['webhook-id' => 'evt_2', 'webhook-timestamp' => '1767225600', 'webhook-signature' => self::sign('evt_2', '1767225600', $body)];

        self::assertSame('order.paid', Webhook::verify([$other, self::SECRET], $headers, $body, now: 1767225600)['type']);
        $this->expectException(WebhookVerificationException::class);
        Webhook::verify([$other], $headers, $body, now: 1767225600);
    }

    public function testMissingHeadersAreRefused(): void
    {
        $this->expectException(WebhookVerificationException::class);
        Webhook::verify(self::SECRET, ['webhook-id' => 'evt_1'], '{}');
    }

    public function testATimestampThatIsNotANumberIsRefused(): void
    {
        $this->expectException(WebhookVerificationException::class);
        Webhook::verify(self::SECRET, ['webhook-id' => 'a', 'webhook-timestamp' => '1e9', 'webhook-signature' => 'v1,x'], '{}', now: 1000000000);
    }

    public function testASignedBodyThatIsNotJsonIsRefused(): void
    {
        $this->expectException(WebhookVerificationException::class);
        Webhook::verify(self::SECRET, ['webhook-id' => 'a', 'webhook-timestamp' => '5', 'webhook-signature' => self::sign('a', '5', 'not json')], 'not json', now: 5);
    }

    private static function sign(string $id, string $timestamp, string $body): string
    {
        $key = base64_decode(substr(self::SECRET, 6));

        return 'v1,' . base64_encode(hash_hmac('sha256', "$id.$timestamp.$body", $key, true));
    }
}
