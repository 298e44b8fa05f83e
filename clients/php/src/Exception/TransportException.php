<?php

declare(strict_types=1);

namespace Opsdeck\Client\Exception;

/**
 * Opsdeck could not be reached or did not answer in time (DNS, refused connection, reset,
 * timeout): no HTTP status, so `$status` is 0. Retried like a 5xx before it is thrown.
 */
final class TransportException extends OpsdeckException
{
}
