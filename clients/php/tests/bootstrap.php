<?php

declare(strict_types=1);

// The suite runs without composer (Debian's phpunit): the same PSR-4 map composer.json declares.
spl_autoload_register(static function (string $class): void {
    $roots = [
        'Opsdeck\\Client\\Tests\\' => __DIR__ . '/',
        'Opsdeck\\Client\\' => __DIR__ . '/../src/',
    ];
    foreach ($roots as $prefix => $dir) {
        if (str_starts_with($class, $prefix)) {
            $file = $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
            if (is_file($file)) {
                require $file;
            }
            return;
        }
    }
});
