<?php

declare(strict_types=1);

namespace Opsdeck\Client\Exception;

/**
 * A wait helper (`jobs->wait`, `scans->waitForVerdict`) gave up before the resource finished.
 * The work goes on on the server; wait again or read it later.
 */
final class TimeoutException extends OpsdeckException
{
}
