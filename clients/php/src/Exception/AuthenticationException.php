<?php

declare(strict_types=1);

namespace Opsdeck\Client\Exception;

/**
 * 401: the key id, secret or clock is wrong (the server says no more, on purpose).
 */
final class AuthenticationException extends OpsdeckException
{
}
