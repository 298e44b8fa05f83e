<?php

declare(strict_types=1);

namespace Opsdeck\Client\Tests\Integration;

use Opsdeck\Client\Tests\Support\LiveTestCase;

/** clients/SCENARIOS.md 6: EICAR as bytes and a clean file from disk, verdicts, download. */
final class ScansTest extends LiveTestCase
{
    private ?string $path = null;

    public function testScans(): void
    {
        // Two halves, so that this source file is not itself a virus signature match.
        $eicar = 'X5O!P%@AP[4\PZX54(P^)7CC)7}$' . 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
        self::assertSame(68, strlen($eicar));
        $clean = "Invoice 42\nTotal: 100.00 KES\n" . self::unique('clean') . "\n";
        $this->path = tempnam(sys_get_temp_dir(), 'opsdeck-php-');
        file_put_contents($this->path, $clean);
        $client = self::client();

        $infected = $client->scans->uploadBytes($eicar, 'eicar.txt');
        $fromDisk = $client->scans->uploadFile($this->path, 'invoice.txt');
        $infected = $client->scans->waitForVerdict($infected['id'], timeout: 60);
        $fromDisk = $client->scans->waitForVerdict($fromDisk['id'], timeout: 60);

        self::assertSame('infected', $infected['status'], (string) json_encode($infected));
        self::assertNotEmpty($infected['signature']);
        self::assertSame('clean', $fromDisk['status'], (string) json_encode($fromDisk));
        self::assertSame($clean, $client->scans->download($fromDisk['id']));
        $copy = fopen('php://temp', 'w+b');
        self::assertSame(strlen($clean), $client->scans->downloadTo($fromDisk['id'], $copy));
        rewind($copy);
        self::assertSame($clean, stream_get_contents($copy));
    }

    protected function tearDown(): void
    {
        if ($this->path !== null) {
            @unlink($this->path);
        }
    }
}
