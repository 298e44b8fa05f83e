<?php

declare(strict_types=1);

namespace Opsdeck\Client\Transport;

use Opsdeck\Client\Exception\TransportException;
use Opsdeck\Client\Response;

/**
 * Sends one HTTP request as given: no signing, no retries (the Client does both). A seam for
 * tests and for callers who route through their own HTTP stack.
 */
interface Transport
{
    /**
     * @param list<string>  $headers "Name: value" lines
     * @param resource|null $sink    where a successful (2xx) answer's body goes instead of memory
     *
     * @throws TransportException when no HTTP answer arrived
     */
    public function send(string $method, string $url, array $headers, string $body, float $timeout, float $connectTimeout, $sink = null): Response;
}
