<?php

declare(strict_types=1);

namespace Opsdeck\Client\Exception;

use Opsdeck\Client\Response;

/**
 * An error answer from Opsdeck (a problem+json document), or a failure to reach it
 * (TransportException, status 0). Catch this to catch everything the client throws on a call.
 */
class OpsdeckException extends \RuntimeException
{
    /**
     * @param array<string, mixed> $errors  field → messages; for a bulk call, keyed by item index
     * @param array<string, mixed> $problem the whole problem document, extension members included
     */
    public function __construct(
        string $message,
        public readonly int $status = 0,
        public readonly ?string $type = null,
        public readonly ?string $title = null,
        public readonly ?string $detail = null,
        public readonly array $errors = [],
        public readonly ?int $retryAfter = null,
        public readonly array $problem = [],
        public readonly ?Response $response = null,
        ?\Throwable $previous = null,
    ) {
        parent::__construct($message, $status, $previous);
    }

    /** The exception for an error answer (status 400 or more). */
    public static function fromResponse(Response $response): self
    {
        try {
            $problem = $response->json();
        } catch (\JsonException) {
            $problem = null; // a proxy's HTML error page, say: the status still tells
        }
        $problem = is_array($problem) ? $problem : [];
        $title = is_string($problem['title'] ?? null) ? $problem['title'] : null;
        $detail = is_string($problem['detail'] ?? null) ? $problem['detail'] : null;
        $message = sprintf('Opsdeck answered %d%s%s', $response->status, $title ? " $title" : '', $detail ? ": $detail" : '');
        $class = match ($response->status) {
            401 => AuthenticationException::class,
            404 => NotFoundException::class,
            409 => ConflictException::class,
            422 => ValidationException::class,
            429 => RateLimitException::class,
            default => self::class,
        };

        return new $class(
            $message,
            $response->status,
            is_string($problem['type'] ?? null) ? $problem['type'] : null,
            $title,
            $detail,
            is_array($problem['errors'] ?? null) ? $problem['errors'] : [],
            self::retryAfter($response->header('Retry-After')),
            $problem,
            $response,
        );
    }

    /** Retry-After in seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
    public static function retryAfter(?string $value, ?int $now = null): ?int
    {
        if ($value === null || trim($value) === '') {
            return null;
        }
        $value = trim($value);
        if (ctype_digit($value)) {
            return (int) $value;
        }
        $at = strtotime($value);

        return $at === false ? null : max(0, $at - ($now ?? time()));
    }
}
