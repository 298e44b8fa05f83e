<?php

declare(strict_types=1);

namespace Opsdeck\Client\Tests\Support;

/**
 * clients/test-vectors.json, shared by every client and the server's tests.
 */
final class Vectors
{
    /** @return array<string, mixed> */
    public static function load(): array
    {
        $path = __DIR__ . '/../../../test-vectors.json';

        return json_decode((string) file_get_contents($path), true, 512, JSON_THROW_ON_ERROR);
    }

    /** @return array<string, array{0: array<string, mixed>}> data-provider rows named after each vector */
    public static function rows(string $kind): array
    {
        $rows = [];
        foreach (self::load()[$kind] as $vector) {
            $rows[$vector['name']] = [$vector];
        }

        return $rows;
    }
}
