<?php

declare(strict_types=1);

namespace Opsdeck\Client;

/**
 * Request signatures as the API checks them (docs/api.md, "Signing").
 */
final class Signer
{
    /**
     * The `Opsdeck-Signature` value for one request.
     *
     * @param string $pathWithQuery the request target exactly as sent, percent-encoding kept
     * @param string $body          the body bytes exactly as sent ('' for none)
     */
    public static function sign(string $secret, int $timestamp, string $method, string $pathWithQuery, string $body): string
    {
        $message = $timestamp . '.' . strtoupper($method) . '.' . $pathWithQuery . '.' . $body;

        return 'v1=' . hash_hmac('sha256', $message, $secret);
    }

    /**
     * The three authentication headers, as "Name: value" lines for curl.
     *
     * @return list<string>
     */
    public static function headers(string $keyId, string $secret, int $timestamp, string $method, string $pathWithQuery, string $body): array
    {
        return [
            'Opsdeck-Key: ' . $keyId,
            'Opsdeck-Timestamp: ' . $timestamp,
            'Opsdeck-Signature: ' . self::sign($secret, $timestamp, $method, $pathWithQuery, $body),
        ];
    }
}
