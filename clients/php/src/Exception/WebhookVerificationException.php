<?php

declare(strict_types=1);

namespace Opsdeck\Client\Exception;

/**
 * A webhook request that did not pass `Webhook::verify`: answer it with 400 or 401 and do not
 * act on it. Not an OpsdeckException: it is about a request you received, not a call you made.
 */
final class WebhookVerificationException extends \RuntimeException
{
}
