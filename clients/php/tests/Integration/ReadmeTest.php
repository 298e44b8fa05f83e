<?php

declare(strict_types=1);

namespace Opsdeck\Client\Tests\Integration;

use Opsdeck\Client\Tests\Support\LiveTestCase;
use Opsdeck\Client\Tests\Support\Readme;

/** The README's `run` examples, each run with `php` in a scratch project against the live Opsdeck. */
final class ReadmeTest extends LiveTestCase
{
    /** @dataProvider runnable */
    public function testExampleRuns(array $block): void
    {
        $dir = Readme::project($block['code']);
        try {
            [$status, $output] = Readme::php($dir, 'example.php');
        } finally {
            Readme::remove($dir);
        }

        self::assertSame(0, $status, $output);
        self::assertStringContainsString((string) $block['prints'], $output);
    }

    public static function runnable(): array
    {
        $rows = [];
        foreach (Readme::blocks() as $where => $block) {
            if ($block['mode'] === 'run') {
                $rows[$where] = [$block];
            }
        }

        return $rows;
    }
}
