<?php

declare(strict_types=1);

namespace Opsdeck\Client\Resource;

/**
 * /api/v1/payments: M-Pesa STK pushes your platform started, turned into subscriptions when
 * Safaricom confirms them.
 *
 * To register: array{checkout_request_id: string, plan_id: string, router_id: string,
 * phone: string (E.164), mac?: string}. Registering the same CheckoutRequestID again answers
 * with the first payment.
 */
final class Payments extends Resource
{
    /**
     * @param array<string, mixed> $payment
     * @return array<string, mixed>
     */
    public function create(array $payment, ?string $idempotencyKey = null): array
    {
        return $this->write('POST', '/api/v1/payments', $payment, $idempotencyKey)->json();
    }

    /**
     * Every payment, newest first, a page at a time as you iterate.
     *
     * @param string|null $status expected, processing, processed, failed or held
     * @return \Generator<int, array<string, mixed>>
     */
    public function list(?string $status = null, int $pageSize = 50): \Generator
    {
        return $this->paginate('/api/v1/payments', ['status' => $status], $pageSize);
    }

    /** @return array<string, mixed> status, M-Pesa result, receipt, its subscription */
    public function get(string $id): array
    {
        return $this->read('/api/v1/payments/' . self::id($id));
    }

    /** The CallBackURL to give Daraja with each STK push (it carries this tenant's token). */
    public function mpesaCallbackUrl(): string
    {
        return $this->read('/api/v1/payments/mpesa/callback-url')['url'];
    }
}
