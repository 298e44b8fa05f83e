<?php

declare(strict_types=1);

namespace Opsdeck\Client;

use Opsdeck\Client\Exception\WebhookVerificationException;

/**
 * Verification of the webhooks Opsdeck sends (Standard Webhooks, https://www.standardwebhooks.com).
 */
final class Webhook
{
    private const SECRET_PREFIX = 'whsec_';

    /**
     * Check a delivery's signature and age, and return its payload.
     *
     * @param string|list<string>                 $secret    the endpoint's "whsec_…" secret, or several
     *                                                       (the old and the new while you rotate it)
     * @param array<string, string|list<string>> $headers   the request's headers, names in any case
     *                                                       (PHP's getallheaders(), or Laravel's
     *                                                       $request->headers->all())
     * @param string                              $body      the raw body, exactly as received
     * @param int                                 $tolerance seconds the timestamp may be off, either way
     * @param int|null                            $now       unix time to check against (tests)
     * @return array<string, mixed> the decoded event: {type, timestamp, data}; its id is the webhook-id header
     *
     * @throws WebhookVerificationException
     */
    public static function verify(string|array $secret, array $headers, string $body, int $tolerance = 300, ?int $now = null): array
    {
        $headers = self::lowercase($headers);
        $id = $headers['webhook-id'] ?? null;
        $timestamp = $headers['webhook-timestamp'] ?? null;
        $signatures = $headers['webhook-signature'] ?? null;
        if ($id === null || $timestamp === null || $signatures === null) {
            throw new WebhookVerificationException('Missing webhook-id, webhook-timestamp or webhook-signature header.');
        }
        if (!ctype_digit($timestamp)) {
            throw new WebhookVerificationException('The webhook-timestamp header is not a unix time.');
        }
        // Both ways: an old timestamp is a replay, one from the future a forgery that would outlive the window.
        if (abs(($now ?? time()) - (int) $timestamp) > $tolerance) {
            throw new WebhookVerificationException('The webhook timestamp is outside the tolerance.');
        }
        $expected = [];
        foreach (is_array($secret) ? $secret : [$secret] as $one) {
            $expected[] = base64_encode(hash_hmac('sha256', "$id.$timestamp.$body", self::key($one), true));
        }
        // During a secret rotation a delivery carries one signature per secret: any may match.
        foreach (preg_split('/\s+/', trim($signatures)) as $candidate) {
            [$version, $signature] = array_pad(explode(',', $candidate, 2), 2, '');
            if ($version === 'v1' && self::matches($expected, $signature)) {
                try {
                    $payload = Json::decode($body);
                } catch (\JsonException $error) {
                    throw new WebhookVerificationException('The webhook body is not JSON.', 0, $error);
                }
                if (!is_array($payload)) {
                    throw new WebhookVerificationException('The webhook body is not a JSON object.');
                }

                return $payload;
            }
        }
        throw new WebhookVerificationException('No webhook signature matches this secret.');
    }

    /** @param list<string> $expected */
    private static function matches(array $expected, string $signature): bool
    {
        $found = false;
        foreach ($expected as $one) {
            $found = hash_equals($one, $signature) || $found; // every one compared: constant time
        }

        return $found;
    }

    /** The signing key: the base64 text after "whsec_". */
    private static function key(string $secret): string
    {
        $encoded = str_starts_with($secret, self::SECRET_PREFIX) ? substr($secret, strlen(self::SECRET_PREFIX)) : $secret;
        $key = base64_decode($encoded, true);
        if ($key === false || $key === '') {
            throw new WebhookVerificationException('The webhook secret is not a "whsec_" base64 secret.');
        }

        return $key;
    }

    /**
     * @param array<string, string|list<string>> $headers
     * @return array<string, string> names lowercased; a header given as a list: its values joined
     */
    private static function lowercase(array $headers): array
    {
        $out = [];
        foreach ($headers as $name => $value) {
            $value = is_array($value) ? implode(' ', $value) : (string) $value;
            $out[strtolower((string) $name)] = trim($value);
        }

        return $out;
    }
}
