<?php

declare(strict_types=1);

namespace Opsdeck\Client\Tests\Unit;

use Opsdeck\Client\Tests\Support\Readme;
use PHPUnit\Framework\TestCase;

/** Every PHP block of the README is checked: each says how, and each one parses. */
final class ReadmeTest extends TestCase
{
    public function testEveryPhpBlockIsMarkedRunOrLint(): void
    {
        $blocks = Readme::blocks();

        self::assertGreaterThanOrEqual(10, count($blocks));
        foreach ($blocks as $where => $block) {
            self::assertNotNull($block['mode'], "$where has no <!-- test: run|lint --> marker");
            if ($block['mode'] === 'run') {
                self::assertNotNull($block['prints'], "$where runs but says nothing it prints");
            }
        }
        self::assertSame(
            substr_count((string) file_get_contents(__DIR__ . '/../../README.md'), "```php\n"),
            count($blocks),
            'a ```php block the pattern did not see',
        );
    }

    /** @dataProvider blocks */
    public function testBlockLints(array $block): void
    {
        $dir = Readme::project($block['code']);
        try {
            [$status, $output] = Readme::php($dir, '-l', 'example.php');
        } finally {
            Readme::remove($dir);
        }

        self::assertSame(0, $status, $output);
    }

    public static function blocks(): array
    {
        return array_map(static fn (array $block): array => [$block], Readme::blocks());
    }
}
