<?php

declare(strict_types=1);

namespace Opsdeck\Client\Exception;

/**
 * 404: no such resource for this tenant (or its family is switched off).
 */
final class NotFoundException extends OpsdeckException
{
}
