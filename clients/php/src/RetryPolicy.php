<?php

declare(strict_types=1);

namespace Opsdeck\Client;

/**
 * When to send a request again, and after how long. Every request is safe to repeat: reads by
 * nature, writes through their Idempotency-Key (the server answers a repeat from the first).
 */
final class RetryPolicy
{
    /**
     * @param int   $maxAttempts   tries in all, the first included (1: never retry)
     * @param float $baseDelay     seconds before the first retry; doubled for each next one
     * @param float $maxDelay      the most a backoff waits, before jitter
     * @param int   $maxRetryAfter the longest Retry-After honoured; a longer one is thrown at once.
     *                             The server's rate-limit window is a minute.
     */
    public function __construct(
        public readonly int $maxAttempts = 3,
        public readonly float $baseDelay = 0.5,
        public readonly float $maxDelay = 8.0,
        public readonly int $maxRetryAfter = 60,
    ) {
    }

    /**
     * Seconds to wait before attempt `$attempt + 1`, or null to stop.
     *
     * @param int      $attempt    the attempt that just failed, from 1
     * @param int|null $status     its HTTP status; null when no answer came (connection error, timeout)
     * @param int|null $retryAfter its Retry-After, in seconds
     */
    public function delay(int $attempt, ?int $status, ?int $retryAfter = null, ?int $maxAttempts = null): ?float
    {
        if ($attempt >= ($maxAttempts ?? $this->maxAttempts) || !self::retryable($status)) {
            return null;
        }
        if ($retryAfter !== null && ($status === 429 || $status === 503)) {
            if ($retryAfter > $this->maxRetryAfter) {
                return null; // sooner would only be refused again: let the caller decide
            }
            // A little past the window's end, spread so that many waiting clients do not return at once.
            return $retryAfter + 0.5 * self::random();
        }
        $backoff = min($this->maxDelay, $this->baseDelay * 2 ** ($attempt - 1));

        // "Equal jitter": at least half the backoff, so retries never bunch up at zero.
        return $backoff / 2 + $backoff / 2 * self::random();
    }

    public static function retryable(?int $status): bool
    {
        return $status === null || $status === 429 || ($status >= 500 && $status !== 501);
    }

    private static function random(): float
    {
        return mt_rand() / mt_getrandmax();
    }
}
