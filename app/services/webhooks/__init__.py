"""The webhooks family: endpoints, events and their fan-out, delivery, and the outbound HTTP
transport with its SSRF guard."""
