<?php

declare(strict_types=1);

namespace Opsdeck\Client\Tests\Support;

use Opsdeck\Client\Exception\TransportException;
use Opsdeck\Client\Response;
use Opsdeck\Client\Transport\Transport;

/**
 * Answers from a script and records what was sent, for unit tests of the client's logic.
 */
final class FakeTransport implements Transport
{
    /** @var list<array{method: string, url: string, headers: array<string, string>, body: string}> */
    public array $sent = [];

    /** @param list<Response|TransportException> $script */
    public function __construct(private array $script)
    {
    }

    public static function json(int $status, mixed $body, array $headers = []): Response
    {
        return new Response($status, $headers + ['content-type' => 'application/json'], json_encode($body));
    }

    public function send(string $method, string $url, array $headers, string $body, float $timeout, float $connectTimeout, $sink = null): Response
    {
        $named = [];
        foreach ($headers as $line) {
            [$name, $value] = explode(':', $line, 2);
            $named[strtolower($name)] = trim($value);
        }
        $this->sent[] = ['method' => $method, 'url' => $url, 'headers' => $named, 'body' => $body];
        $next = array_shift($this->script) ?? throw new \LogicException("Unscripted request: $method $url");
        if ($next instanceof TransportException) {
            throw $next;
        }
        if ($sink !== null && $next->status < 300) {
            fwrite($sink, $next->body);

            return new Response($next->status, $next->headers, '');
        }

        return $next;
    }
}
