<?php

declare(strict_types=1);

namespace Opsdeck\Client\Tests\Support;

/**
 * A one-request-at-a-time HTTP server on 127.0.0.1 that keeps what Opsdeck delivers to it.
 */
final class WebhookReceiver
{
    /** @var resource */
    private $server;

    public function __construct()
    {
        $server = stream_socket_server('tcp://127.0.0.1:0', $errno, $error);
        if ($server === false) {
            throw new \RuntimeException("Cannot listen on 127.0.0.1: $error ($errno)");
        }
        $this->server = $server;
    }

    public function url(): string
    {
        return 'http://' . stream_socket_get_name($this->server, false) . '/webhooks/opsdeck';
    }

    /**
     * The next request received, answered 200.
     *
     * @return array{headers: array<string, string>, body: string}
     */
    public function receive(float $timeout = 30.0): array
    {
        $connection = @stream_socket_accept($this->server, $timeout);
        if ($connection === false) {
            throw new \RuntimeException(sprintf('No webhook delivery within %.0f s', $timeout));
        }
        stream_set_timeout($connection, 10);
        $headers = [];
        fgets($connection); // the request line
        while (($line = fgets($connection)) !== false && rtrim($line, "\r\n") !== '') {
            [$name, $value] = explode(':', $line, 2);
            $headers[strtolower(trim($name))] = trim($value);
        }
        $body = '';
        $length = (int) ($headers['content-length'] ?? 0);
        while (strlen($body) < $length && !feof($connection)) {
            $body .= fread($connection, $length - strlen($body));
        }
        fwrite($connection, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        fclose($connection);

        return ['headers' => $headers, 'body' => $body];
    }

    /**
     * The next delivery of the event `$eventId`, skipping any other (a retry of an earlier one).
     *
     * @return array{headers: array<string, string>, body: string}
     */
    public function receiveEvent(string $eventId, float $timeout = 30.0): array
    {
        $deadline = microtime(true) + $timeout;
        do {
            $request = $this->receive(max(1.0, $deadline - microtime(true)));
            if (($request['headers']['webhook-id'] ?? null) === $eventId) { // Opsdeck's event id
                return $request;
            }
        } while (microtime(true) < $deadline);
        throw new \RuntimeException("No delivery of $eventId within $timeout s");
    }

    public function __destruct()
    {
        fclose($this->server);
    }
}
