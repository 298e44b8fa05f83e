<?php

declare(strict_types=1);

namespace Opsdeck\Client\Transport;

use Opsdeck\Client\Exception\TransportException;
use Opsdeck\Client\Response;

/**
 * The default transport: ext-curl, one handle kept per client so connections are reused.
 */
final class CurlTransport implements Transport
{
    /** @var \CurlHandle|null */
    private $handle = null;

    public function send(string $method, string $url, array $headers, string $body, float $timeout, float $connectTimeout, $sink = null): Response
    {
        $this->handle ??= curl_init();
        $curl = $this->handle;
        curl_reset($curl);

        $hasType = (bool) preg_grep('/^content-type:/i', $headers);
        $responseHeaders = [];
        $buffer = '';
        $method = strtoupper($method);
        curl_setopt_array($curl, [
            CURLOPT_URL => $url,
            CURLOPT_CUSTOMREQUEST => $method,
            // The signature covers the target as written: curl must not squash "." or ".." segments.
            CURLOPT_PATH_AS_IS => true,
            // "Expect: 100-continue" would cost a round trip on every body over 1 KiB.
            // No body type given: curl must not add its form-urlencoded default to a bare write.
            CURLOPT_HTTPHEADER => [...$headers, 'Expect:', ...($hasType ? [] : ['Content-Type:'])],
            CURLOPT_TIMEOUT_MS => (int) ceil($timeout * 1000),
            CURLOPT_CONNECTTIMEOUT_MS => (int) ceil($connectTimeout * 1000),
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_NOSIGNAL => true,
            CURLOPT_HEADERFUNCTION => static function ($curl, string $line) use (&$responseHeaders): int {
                if (str_starts_with($line, 'HTTP/')) {
                    $responseHeaders = []; // a new status line: an interim answer (100) came first
                } elseif (str_contains($line, ':')) {
                    [$name, $value] = explode(':', $line, 2);
                    $name = strtolower(trim($name));
                    $value = trim($value);
                    $responseHeaders[$name] = isset($responseHeaders[$name]) ? $responseHeaders[$name] . ', ' . $value : $value;
                }

                return strlen($line);
            },
            CURLOPT_WRITEFUNCTION => static function ($curl, string $data) use (&$buffer, $sink): int {
                $status = curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
                if ($sink !== null && $status >= 200 && $status < 300) {
                    return (int) fwrite($sink, $data);
                }
                $buffer .= $data;

                return strlen($data);
            },
        ]);
        if ($method === 'HEAD') {
            curl_setopt($curl, CURLOPT_NOBODY, true);
        } elseif ($body !== '' || in_array($method, ['POST', 'PATCH', 'PUT', 'DELETE'], true)) {
            // Also for an empty body: a write then carries "Content-Length: 0".
            curl_setopt($curl, CURLOPT_POSTFIELDS, $body);
        }

        if (curl_exec($curl) === false) {
            throw new TransportException(sprintf('%s %s failed: %s (curl error %d)', $method, $url, curl_error($curl), curl_errno($curl)));
        }

        return new Response(curl_getinfo($curl, CURLINFO_RESPONSE_CODE), $responseHeaders, $buffer);
    }

    public function __destruct()
    {
        if ($this->handle !== null) {
            curl_close($this->handle);
        }
    }
}
