<?php

declare(strict_types=1);

namespace Opsdeck\Client\Exception;

/**
 * 409: the resource's state does not allow the change (a running job cancelled, say).
 */
final class ConflictException extends OpsdeckException
{
}
