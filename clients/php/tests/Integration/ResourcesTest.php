<?php

declare(strict_types=1);

namespace Opsdeck\Client\Tests\Integration;

use Opsdeck\Client\Exception\NotFoundException;
use Opsdeck\Client\Tests\Support\LiveTestCase;

/** The typed calls the scenarios do not reach, each once against the live Opsdeck's routes. */
final class ResourcesTest extends LiveTestCase
{
    public function testEmailsAndEvents(): void
    {
        $client = self::client();
        $to = self::unique('php') . '@example.com';

        $mail = $client->emails->send(['to' => $to, 'subject' => 'Hi', 'text' => 'Body', 'headers' => []]);
        $more = $client->emails->sendMany([['to' => $to, 'subject' => 'Again', 'text' => 'Body']]);
        $own = self::unique('evt');
        $event = $client->events->publish('php.resource', ['n' => 1], id: $own);
        $again = $client->events->publish('php.resource', ['n' => 1], id: $own);

        self::assertSame($to, $client->emails->get($mail['id'])['to']);
        self::assertCount(1, $more);
        self::assertEqualsCanonicalizing([$mail['id'], $more[0]['id']], array_column(iterator_to_array($client->emails->list(to: $to)), 'id'));
        self::assertSame([$event['id'], false, true], [$again['id'], $event['replayed'], $again['replayed']]);
        self::assertSame($event['id'], $client->events->get($own)['id']);
        self::assertArrayHasKey('deliveries', $client->events->get($event['id']));
    }

    public function testWebhookEndpointsAndDeliveries(): void
    {
        $client = self::client();
        $type = self::unique('php.unreached');
        // Nothing listens on port 9 (discard): the delivery fails, and is there to read and retry.
        $endpoint = $client->webhookEndpoints->create('http://127.0.0.1:9/hook', ['event_types' => [$type]]);

        $changed = $client->webhookEndpoints->update($endpoint['id'], ['description' => 'changed']);
        $client->events->publish($type, ['n' => 1]);
        $deliveries = iterator_to_array($client->webhookEndpoints->deliveries($endpoint['id']));
        $delivery = $client->webhookDeliveries->get($deliveries[0]['id']);
        $retried = $client->webhookDeliveries->retry($delivery['id']);
        $recovered = $client->webhookEndpoints->recover($endpoint['id'], new \DateTimeImmutable('-1 hour'));
        $listed = array_column($client->webhookEndpoints->list(), 'id');
        $client->webhookEndpoints->delete($endpoint['id']);

        self::assertSame('changed', $changed['description']);
        self::assertContains($endpoint['id'], $listed);
        self::assertCount(1, $deliveries);
        self::assertArrayHasKey('attempt_log', $delivery);
        self::assertSame($delivery['id'], $retried['id']);
        self::assertIsInt($recovered['requeued']);
        $this->expectException(NotFoundException::class);
        $client->webhookEndpoints->get($endpoint['id']);
    }

    public function testProvisioning(): void
    {
        $client = self::client();
        $router = $client->routers->create(['name' => 'php-test', 'host' => '127.0.0.1', 'port' => 9, 'username' => 'admin', 'password' => 'secret']);
        $plan = $client->plans->create(['name' => 'Day pass', 'price' => '50', 'duration' => '1d']);

        $renamed = $client->routers->update($router['id'], ['name' => 'php-test-2']);
        $shared = $client->plans->update($plan['id'], ['shared_users' => 2]);
        $subscription = $client->subscriptions->create(['plan_id' => $plan['id'], 'router_id' => $router['id']]);
        $extended = $client->subscriptions->extend($subscription['id'], '1h');
        $client->subscriptions->reprovision($subscription['id']);
        $expired = $client->subscriptions->expire($subscription['id']);
        $vouchers = $client->vouchers->create($plan['id'], $router['id'], 2, ['prefix' => 'php']);
        $payment = $client->payments->create([
            'checkout_request_id' => self::unique('ws_CO'), 'plan_id' => $plan['id'], 'router_id' => $router['id'], 'phone' => '+254712345678',
        ]);

        self::assertSame('php-test-2', $renamed['name']);
        self::assertSame(2, $shared['shared_users']);
        self::assertSame(86400, $client->plans->get($plan['id'])['duration_seconds']);
        self::assertContains($plan['id'], array_column($client->plans->list(), 'id'));
        self::assertContains($router['id'], array_column($client->routers->list(), 'id'));
        self::assertSame($router['id'], $client->routers->get($router['id'])['id']);
        self::assertGreaterThan(strtotime($subscription['expires_at']), strtotime($extended['expires_at']));
        self::assertLessThan(strtotime($extended['expires_at']), strtotime($expired['expires_at']));
        self::assertSame($subscription['id'], $client->subscriptions->get($subscription['id'])['id']);
        self::assertContains($subscription['id'], array_column(iterator_to_array($client->subscriptions->list()), 'id'));
        self::assertCount(2, $vouchers);
        self::assertStringStartsWith('php', $vouchers[0]['username']);
        self::assertSame('50.00', $client->payments->get($payment['id'])['amount_expected']);
        self::assertContains($payment['id'], array_column(iterator_to_array($client->payments->list(status: 'expected')), 'id'));
        self::assertStringContainsString('/api/v1/payments/mpesa/callback/', $client->payments->mpesaCallbackUrl());
        $client->routers->delete($router['id']);
        $this->expectException(NotFoundException::class);
        $client->routers->get($router['id']);
    }
}
