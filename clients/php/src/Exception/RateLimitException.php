<?php

declare(strict_types=1);

namespace Opsdeck\Client\Exception;

/**
 * 429: the tenant's requests per minute are spent; `$retryAfter` says for how long.
 */
final class RateLimitException extends OpsdeckException
{
}
