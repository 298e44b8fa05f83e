<?php

declare(strict_types=1);

namespace Opsdeck\Client\Tests\Support;

/**
 * The README's PHP blocks, each with the check its marker asks for:
 * `<!-- test: run, prints "…" -->` or `<!-- test: lint -->` on the line before the fence.
 */
final class Readme
{
    private const BLOCK = '/^(?:<!-- test: (run|lint)(?:, prints "([^"]*)")? -->\n)?```php\n(.*?)^```$/ms';

    /** @return array<string, array{mode: string|null, prints: string|null, code: string}> keyed by block number and first line */
    public static function blocks(): array
    {
        $text = (string) file_get_contents(__DIR__ . '/../../README.md');
        preg_match_all(self::BLOCK, $text, $matches, PREG_SET_ORDER);
        $blocks = [];
        foreach ($matches as $n => [, $mode, $prints, $code]) {
            $line = substr_count(strstr($text, $code, true), "\n") + 1;
            $blocks["block at README.md:$line"] = ['mode' => $mode ?: null, 'prints' => $prints ?: null, 'code' => $code];
        }

        return $blocks;
    }

    /**
     * A scratch project holding `$code` as example.php and a vendor/autoload.php that loads
     * this package as composer's would.
     */
    public static function project(string $code): string
    {
        $dir = sys_get_temp_dir() . '/opsdeck-php-readme-' . bin2hex(random_bytes(6));
        mkdir("$dir/vendor", 0700, true);
        $src = var_export(realpath(__DIR__ . '/../../src') . '/', true);
        file_put_contents("$dir/vendor/autoload.php", <<<PHP
            <?php
            spl_autoload_register(static function (string \$class): void {
                if (str_starts_with(\$class, 'Opsdeck\\\\Client\\\\')) {
                    \$file = $src . str_replace('\\\\', '/', substr(\$class, strlen('Opsdeck\\\\Client\\\\'))) . '.php';
                    if (is_file(\$file)) {
                        require \$file;
                    }
                }
            });
            PHP);
        file_put_contents("$dir/example.php", $code);

        return $dir;
    }

    /** @return array{0: int, 1: string} exit code and output (stdout and stderr) */
    public static function php(string $dir, string ...$args): array
    {
        $command = array_merge([PHP_BINARY], $args);
        $process = proc_open($command, [1 => ['pipe', 'w'], 2 => ['redirect', 1]], $pipes, $dir, ['TMPDIR' => $dir] + getenv());
        $output = stream_get_contents($pipes[1]);
        fclose($pipes[1]);

        return [proc_close($process), (string) $output];
    }

    public static function remove(string $dir): void
    {
        foreach (new \RecursiveIteratorIterator(new \RecursiveDirectoryIterator($dir, \FilesystemIterator::SKIP_DOTS), \RecursiveIteratorIterator::CHILD_FIRST) as $file) {
            $file->isDir() ? rmdir($file->getPathname()) : unlink($file->getPathname());
        }
        rmdir($dir);
    }
}
