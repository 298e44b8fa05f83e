<?php

declare(strict_types=1);

namespace Opsdeck\Client\Resource;

use Opsdeck\Client\Multipart;

/**
 * /api/v1/scans: upload files to be checked by ClamAV, read verdicts, download clean files.
 *
 * A scan, as answered: array{id: string, status: 'pending'|'clean'|'infected'|'rejected'|'error',
 * name: string, extension: string, content_type: ?string, size: int, sha256: string,
 * reject_reason: ?string, signature: ?string, engine_version: ?string, location: string,
 * created_at: string, verdict_at: ?string, ...}.
 *
 * A file refused by the pre-checks (size, extension, type by content) is a ValidationException
 * whose `problem` carries the record's `scan_id`.
 */
final class Scans extends Resource
{
    /** The states a scan does not leave by itself. */
    public const VERDICTS = ['clean', 'infected', 'rejected', 'error'];

    /**
     * Upload a file from disk. It is read whole: the signature covers the body's bytes.
     *
     * @param string|null $filename the name Opsdeck keeps (its extension is checked); default: the file's
     * @return array<string, mixed> the scan, pending
     */
    public function uploadFile(string $path, ?string $filename = null, ?string $idempotencyKey = null): array
    {
        $bytes = @file_get_contents($path);
        if ($bytes === false) {
            throw new \RuntimeException("Cannot read $path: " . (error_get_last()['message'] ?? 'unknown error'));
        }

        return $this->uploadBytes($bytes, $filename ?? basename($path), $idempotencyKey);
    }

    /**
     * Upload a file held in memory.
     *
     * @return array<string, mixed> the scan, pending
     */
    public function uploadBytes(string $bytes, string $filename, ?string $idempotencyKey = null): array
    {
        [$contentType, $body] = Multipart::file('file', $filename, $bytes);

        return $this->client->request('POST', '/api/v1/scans', $body, [
            'content_type' => $contentType,
            'idempotency_key' => $idempotencyKey,
        ])->json();
    }

    /** @return array<string, mixed> */
    public function get(string $id): array
    {
        return $this->read('/api/v1/scans/' . self::id($id));
    }

    /**
     * Every scan, newest first, a page at a time as you iterate.
     *
     * @return \Generator<int, array<string, mixed>>
     */
    public function list(?string $status = null, int $pageSize = 50): \Generator
    {
        return $this->paginate('/api/v1/scans', ['status' => $status], $pageSize);
    }

    /**
     * Poll until the scan has a verdict (clean, infected, rejected or error), and return it.
     *
     * @return array<string, mixed>
     *
     * @throws \Opsdeck\Client\Exception\TimeoutException
     */
    public function waitForVerdict(string $id, float $timeout = 60.0, float $interval = 0.5): array
    {
        return $this->poll(
            '/api/v1/scans/' . self::id($id),
            static fn (array $scan): bool => in_array($scan['status'], self::VERDICTS, true),
            $timeout,
            $interval,
            "Scan $id",
        );
    }

    /**
     * The clean file's bytes (ConflictException unless the verdict is clean).
     */
    public function download(string $id): string
    {
        return $this->client->request('GET', self::file($id))->body;
    }

    /**
     * Write the clean file to a path or an open stream, without holding it in memory.
     *
     * @param string|resource $target a file path (created or truncated) or a writable stream
     * @return int the bytes written
     */
    public function downloadTo(string $id, $target): int
    {
        $stream = is_string($target) ? @fopen($target, 'wb') : $target;
        if (!is_resource($stream)) {
            throw new \InvalidArgumentException('Give a writable file path or stream.');
        }
        $start = ftell($stream);
        try {
            $response = $this->client->request('GET', self::file($id), null, ['sink' => $stream]);
            $end = ftell($stream);

            // A pipe or socket cannot tell its position: the answer's length says it then.
            return $start !== false && $end !== false ? $end - $start : (int) $response->header('Content-Length');
        } finally {
            if (is_string($target)) {
                fclose($stream);
            }
        }
    }

    private static function file(string $id): string
    {
        return '/api/v1/scans/' . self::id($id) . '/file';
    }
}
