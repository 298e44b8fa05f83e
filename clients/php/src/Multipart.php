<?php

declare(strict_types=1);

namespace Opsdeck\Client;

/**
 * A multipart/form-data body built here rather than by curl, because the request signature
 * covers the exact body bytes and curl's own encoder does not expose them.
 */
final class Multipart
{
    /**
     * One file part.
     *
     * @return array{0: string, 1: string} the Content-Type header value and the body bytes
     */
    public static function file(string $field, string $filename, string $bytes, ?string $boundary = null): array
    {
        $boundary ??= self::boundary($bytes);
        $body = '--' . $boundary . "\r\n"
            . 'Content-Disposition: form-data; name="' . self::quote($field) . '"; filename="' . self::quote($filename) . "\"\r\n"
            . "Content-Type: application/octet-stream\r\n"
            . "\r\n"
            . $bytes . "\r\n"
            . '--' . $boundary . "--\r\n";

        return ['multipart/form-data; boundary=' . $boundary, $body];
    }

    /** A random boundary that does not occur in the content. */
    private static function boundary(string $bytes): string
    {
        do {
            $boundary = 'opsdeck-' . bin2hex(random_bytes(16));
        } while (str_contains($bytes, $boundary));

        return $boundary;
    }

    /** Quotes and line breaks percent-encoded, as browsers do (WHATWG multipart/form-data). */
    private static function quote(string $name): string
    {
        return str_replace(["\r", "\n", '"'], ['%0D', '%0A', '%22'], $name);
    }
}
