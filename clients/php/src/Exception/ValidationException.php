<?php

declare(strict_types=1);

namespace Opsdeck\Client\Exception;

/**
 * 422: invalid fields; `$errors` maps each field (or bulk item index) to its messages.
 */
final class ValidationException extends OpsdeckException
{
}
