<?php

declare(strict_types=1);

namespace Opsdeck\Client\Tests\Support;

use Opsdeck\Client\Client;
use PHPUnit\Framework\TestCase;

/**
 * A test against a live Opsdeck (clients/SCENARIOS.md). Skipped unless
 * OPSDECK_CLIENT_INTEGRATION=1; with it set, a missing variable fails the test.
 */
abstract class LiveTestCase extends TestCase
{
    public const VARIABLES = [
        'OPSDECK_URL', 'OPSDECK_KEY_ID', 'OPSDECK_SECRET',
        'OPSDECK_LIMITED_URL', 'OPSDECK_LIMITED_KEY_ID', 'OPSDECK_LIMITED_SECRET', 'OPSDECK_LIMIT',
    ];

    protected function setUp(): void
    {
        if (!self::integration()) {
            self::markTestSkipped('Set OPSDECK_CLIENT_INTEGRATION=1 and the OPSDECK_* variables of a live Opsdeck.');
        }
        $missing = array_filter(self::VARIABLES, static fn (string $name): bool => (string) getenv($name) === '');
        if ($missing !== []) {
            self::fail('OPSDECK_CLIENT_INTEGRATION=1 but not set: ' . implode(', ', $missing));
        }
    }

    public static function integration(): bool
    {
        return getenv('OPSDECK_CLIENT_INTEGRATION') === '1';
    }

    /** @param array<string, mixed> $options */
    protected static function client(array $options = []): Client
    {
        return new Client((string) getenv('OPSDECK_URL'), (string) getenv('OPSDECK_KEY_ID'), (string) getenv('OPSDECK_SECRET'), $options);
    }

    /** @param array<string, mixed> $options */
    protected static function limitedClient(array $options = []): Client
    {
        return new Client((string) getenv('OPSDECK_LIMITED_URL'), (string) getenv('OPSDECK_LIMITED_KEY_ID'), (string) getenv('OPSDECK_LIMITED_SECRET'), $options);
    }

    protected static function unique(string $prefix): string
    {
        return $prefix . '-' . bin2hex(random_bytes(6));
    }
}
