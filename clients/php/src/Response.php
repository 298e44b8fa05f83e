<?php

declare(strict_types=1);

namespace Opsdeck\Client;

/**
 * An HTTP answer: status, headers (names lowercased), body bytes.
 */
final class Response
{
    /**
     * @param array<string, string> $headers lowercased names; repeated headers joined with ", "
     * @param string                $body    empty when the body was written to a sink
     */
    public function __construct(
        public readonly int $status,
        public readonly array $headers,
        public readonly string $body,
    ) {
    }

    public function header(string $name): ?string
    {
        return $this->headers[strtolower($name)] ?? null;
    }

    /** The body decoded from JSON (objects as arrays), or null for an empty body. */
    public function json(): mixed
    {
        return Json::decode($this->body);
    }

    /** Whether the server answered from a stored response (an idempotent repeat). */
    public function replayed(): bool
    {
        return strtolower((string) $this->header('Idempotent-Replayed')) === 'true';
    }
}
