<?php

declare(strict_types=1);

namespace Opsdeck\Client;

use Opsdeck\Client\Exception\OpsdeckException;
use Opsdeck\Client\Exception\TransportException;
use Opsdeck\Client\Resource\Emails;
use Opsdeck\Client\Resource\Events;
use Opsdeck\Client\Resource\Jobs;
use Opsdeck\Client\Resource\Payments;
use Opsdeck\Client\Resource\Plans;
use Opsdeck\Client\Resource\Routers;
use Opsdeck\Client\Resource\Scans;
use Opsdeck\Client\Resource\Subscriptions;
use Opsdeck\Client\Resource\Vouchers;
use Opsdeck\Client\Resource\WebhookDeliveries;
use Opsdeck\Client\Resource\WebhookEndpoints;
use Opsdeck\Client\Transport\CurlTransport;
use Opsdeck\Client\Transport\Transport;

/**
 * The Opsdeck API client: every request signed, writes sent with an Idempotency-Key, failures
 * that are safe to repeat retried. Typed calls live on the resource properties
 * (`$client->jobs->submit(...)`); `request()` reaches any path.
 */
final class Client
{
    public const VERSION = '0.1.0';
    private const WRITES = ['POST', 'PATCH', 'PUT', 'DELETE'];

    public readonly Jobs $jobs;
    public readonly Emails $emails;
    public readonly Events $events;
    public readonly WebhookEndpoints $webhookEndpoints;
    public readonly WebhookDeliveries $webhookDeliveries;
    public readonly Scans $scans;
    public readonly Routers $routers;
    public readonly Plans $plans;
    public readonly Subscriptions $subscriptions;
    public readonly Payments $payments;
    public readonly Vouchers $vouchers;

    private readonly string $origin;
    private readonly string $basePath;
    private readonly RetryPolicy $retry;
    private readonly Transport $transport;
    private readonly float $timeout;
    private readonly float $connectTimeout;
    private readonly string $userAgent;
    /** @var callable(float): void */
    private $sleep;
    /** @var callable(): int */
    private $clock;

    /**
     * @param string $baseUrl e.g. "https://opsdeck.example.com" (a path prefix is kept and signed)
     * @param array{
     *     timeout?: float, connect_timeout?: float, max_attempts?: int, backoff?: float,
     *     max_backoff?: float, max_retry_after?: int, user_agent?: string, transport?: Transport,
     *     sleep?: callable(float): void, clock?: callable(): int
     * } $options timeout: seconds per attempt (30); connect_timeout (10); max_attempts: tries in
     *     all, 1 turns retries off (3); backoff: first retry's delay in seconds (0.5), doubled up
     *     to max_backoff (8); max_retry_after: the longest Retry-After waited for (60); sleep and
     *     clock: for tests
     */
    public function __construct(string $baseUrl, private readonly string $keyId, private readonly string $secret, array $options = [])
    {
        $parts = parse_url($baseUrl);
        if ($parts === false || !isset($parts['scheme'], $parts['host']) || isset($parts['query'])) {
            throw new \InvalidArgumentException("Not a base URL: $baseUrl (e.g. https://opsdeck.example.com)");
        }
        $this->origin = $parts['scheme'] . '://' . $parts['host'] . (isset($parts['port']) ? ':' . $parts['port'] : '');
        $this->basePath = rtrim($parts['path'] ?? '', '/');
        $this->retry = new RetryPolicy(
            (int) ($options['max_attempts'] ?? 3),
            (float) ($options['backoff'] ?? 0.5),
            (float) ($options['max_backoff'] ?? 8.0),
            (int) ($options['max_retry_after'] ?? 60),
        );
        $this->transport = $options['transport'] ?? new CurlTransport();
        $this->timeout = (float) ($options['timeout'] ?? 30.0);
        $this->connectTimeout = (float) ($options['connect_timeout'] ?? 10.0);
        $this->userAgent = $options['user_agent'] ?? 'opsdeck-php/' . self::VERSION . ' PHP/' . PHP_VERSION;
        $this->sleep = $options['sleep'] ?? static function (float $seconds): void {
            usleep((int) round($seconds * 1_000_000));
        };
        $this->clock = $options['clock'] ?? 'time';

        $this->jobs = new Jobs($this);
        $this->emails = new Emails($this);
        $this->events = new Events($this);
        $this->webhookEndpoints = new WebhookEndpoints($this);
        $this->webhookDeliveries = new WebhookDeliveries($this);
        $this->scans = new Scans($this);
        $this->routers = new Routers($this);
        $this->plans = new Plans($this);
        $this->subscriptions = new Subscriptions($this);
        $this->payments = new Payments($this);
        $this->vouchers = new Vouchers($this);
    }

    /**
     * Send a signed request to any path, retrying what is safe to retry; an error answer is thrown.
     *
     * @param string $path "/api/v1/..." (may carry a query string already)
     * @param mixed  $body null for none; a string is sent as is; anything else as JSON (note that
     *                     PHP's `[]` encodes as a JSON list: pass `new \stdClass()` for `{}`)
     * @param array{
     *     query?: array<string, scalar|null>, headers?: array<string, string>,
     *     idempotency_key?: string|null, max_attempts?: int, timeout?: float,
     *     content_type?: string, sink?: resource
     * } $options query: added to the path (nulls left out); idempotency_key: for a write,
     *     instead of a random one; sink: a stream a successful answer's body is written to
     *
     * @throws OpsdeckException an error answer (its subclass by status), or TransportException
     */
    public function request(string $method, string $path, mixed $body = null, array $options = []): Response
    {
        $method = strtoupper($method);
        [$bytes, $contentType] = self::encodeBody($body, $options['content_type'] ?? null);
        $target = $this->target($path, $options['query'] ?? []);
        $headers = ['User-Agent: ' . $this->userAgent];
        if ($contentType !== null) {
            $headers[] = 'Content-Type: ' . $contentType;
        }
        if (in_array($method, self::WRITES, true)) {
            // One key for every attempt: a retry of a write that did go through is answered
            // from the first instead of doing the work twice.
            $headers[] = 'Idempotency-Key: ' . ($options['idempotency_key'] ?? self::newIdempotencyKey());
        }
        foreach ($options['headers'] ?? [] as $name => $value) {
            $headers[] = $name . ': ' . $value;
        }

        for ($attempt = 1; ; $attempt++) {
            // Signed afresh on every attempt: the server refuses timestamps outside its window.
            $signed = [...$headers, ...Signer::headers($this->keyId, $this->secret, ($this->clock)(), $method, $target, $bytes)];
            $spool = isset($options['sink']) ? fopen('php://temp', 'w+b') : null;
            try {
                $response = $this->transport->send(
                    $method,
                    $this->origin . $target,
                    $signed,
                    $bytes,
                    (float) ($options['timeout'] ?? $this->timeout),
                    $this->connectTimeout,
                    $spool,
                );
            } catch (TransportException $error) {
                $delay = $this->retry->delay($attempt, null, null, $options['max_attempts'] ?? null);
                if ($delay === null) {
                    throw $error;
                }
                ($this->sleep)($delay);
                continue;
            }
            if ($response->status < 400) {
                if ($spool !== null) {
                    // Only a complete, successful body reaches the caller's stream: a failed
                    // attempt's bytes stay in the spool and are dropped.
                    rewind($spool);
                    stream_copy_to_stream($spool, $options['sink']);
                    fclose($spool);
                }

                return $response;
            }
            $error = OpsdeckException::fromResponse($response);
            $delay = $this->retry->delay($attempt, $response->status, $error->retryAfter, $options['max_attempts'] ?? null);
            if ($delay === null) {
                throw $error;
            }
            ($this->sleep)($delay);
        }
    }

    /** A random UUID v4 (RFC 9562), the key a write is sent with unless the caller gives one. */
    public static function newIdempotencyKey(): string
    {
        $bytes = random_bytes(16);
        $bytes[6] = chr((ord($bytes[6]) & 0x0F) | 0x40);
        $bytes[8] = chr((ord($bytes[8]) & 0x3F) | 0x80);

        return vsprintf('%s%s-%s-%s-%s-%s%s%s', str_split(bin2hex($bytes), 4));
    }

    /**
     * The request target as it goes on the wire (and is signed): base path, path, query.
     *
     * @param array<string, scalar|null> $query
     */
    private function target(string $path, array $query): string
    {
        $pairs = [];
        foreach ($query as $name => $value) {
            if ($value !== null) {
                // The API reads booleans as true/false, not PHP's 1/"".
                $pairs[$name] = is_bool($value) ? ($value ? 'true' : 'false') : (string) $value;
            }
        }
        $target = $this->basePath . '/' . ltrim($path, '/');
        $encoded = http_build_query($pairs, '', '&', PHP_QUERY_RFC3986);

        return $encoded === '' ? $target : $target . (str_contains($target, '?') ? '&' : '?') . $encoded;
    }

    /** @return array{0: string, 1: string|null} the body bytes and their Content-Type */
    private static function encodeBody(mixed $body, ?string $contentType): array
    {
        if ($body === null) {
            return ['', $contentType];
        }
        if (is_string($body)) {
            return [$body, $contentType ?? 'application/octet-stream'];
        }

        return [Json::encode($body), $contentType ?? 'application/json'];
    }
}
