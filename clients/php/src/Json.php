<?php

declare(strict_types=1);

namespace Opsdeck\Client;

/**
 * JSON as the API expects it: UTF-8 as is, slashes unescaped, failures thrown.
 */
final class Json
{
    private const ENCODE = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR;

    public static function encode(mixed $value): string
    {
        return json_encode($value, self::ENCODE);
    }

    /** @return mixed arrays for JSON objects; null for an empty body */
    public static function decode(string $json): mixed
    {
        if ($json === '') {
            return null;
        }

        return json_decode($json, true, 512, JSON_THROW_ON_ERROR);
    }

    /**
     * A value for a field the API requires to be a JSON object (a job's payload, a mail's
     * context): PHP's empty array would encode as `[]`, which the API refuses there.
     */
    public static function object(mixed $value): mixed
    {
        return $value === [] ? new \stdClass() : $value;
    }
}
