<?php

declare(strict_types=1);

namespace Opsdeck\Client\Resource;

use Opsdeck\Client\Json;

/**
 * /api/v1/emails: queue mail (batched and paced by Opsdeck), read it back.
 *
 * A mail to send: array{to: string, template?: string, context?: array, subject?: string,
 * text?: string, html?: string, digest_key?: string, critical?: bool, send_after?: string,
 * headers?: array<string, string>}: a template, or a subject and a text.
 */
final class Emails extends Resource
{
    /** The most mails one request may queue. */
    public const MAX_PER_REQUEST = 1000;

    /**
     * @param array<string, mixed> $mail
     * @return array<string, mixed> the queued mail (status, message_id, …)
     */
    public function send(array $mail, ?string $idempotencyKey = null): array
    {
        return $this->write('POST', '/api/v1/emails', self::prepare($mail), $idempotencyKey)->json();
    }

    /**
     * Queue many mails, up to 1,000 a request.
     *
     * @param list<array<string, mixed>> $mails
     * @return list<array<string, mixed>> the queued mails, in order
     */
    public function sendMany(array $mails): array
    {
        $answers = [];
        foreach (array_chunk(array_map(self::prepare(...), $mails), self::MAX_PER_REQUEST) as $chunk) {
            array_push($answers, ...$this->write('POST', '/api/v1/emails', $chunk)->json()['data']);
        }

        return $answers;
    }

    /** @return array<string, mixed> */
    public function get(string $id): array
    {
        return $this->read('/api/v1/emails/' . self::id($id));
    }

    /**
     * Every mail, newest first, a page at a time as you iterate.
     *
     * @return \Generator<int, array<string, mixed>>
     */
    public function list(?string $status = null, ?string $to = null, int $pageSize = 50): \Generator
    {
        return $this->paginate('/api/v1/emails', ['status' => $status, 'to' => $to], $pageSize);
    }

    /**
     * @param array<string, mixed> $mail
     * @return array<string, mixed>
     */
    private static function prepare(array $mail): array
    {
        foreach (['context', 'headers'] as $field) {
            if (array_key_exists($field, $mail)) {
                $mail[$field] = Json::object($mail[$field]);
            }
        }

        return $mail;
    }
}
