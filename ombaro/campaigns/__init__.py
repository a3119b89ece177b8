"""Campaigns: marketing messages to an audience over email, SMS, WhatsApp, push and in-app.

- `lifecycle`: create, approve (with the spend guard), send now, pause, resume, cancel;
- `audience`: `target_audience` as SQL, counts per channel and the cost estimate;
- `content`: per-channel content and its templating (name, tier, city);
- `sending`: the start (audience streamed into chunk jobs), one chunk, the minutely tick;
- `webhooks`: provider status events, de-duplicated, never moving a delivery backwards;
- `reconcile`: the `campaigns.reconcile` job: deliveries in doubt (campaigns' and booking
  notifications') resolved by the messaging runtime's rule;
- `unsubscribe`: signed one-click unsubscribe tokens;
- `metrics`: figures from deliveries, and conversions.

The delivery runtime (claim -> call -> record, the token bucket, the in-doubt rule) is shared
with booking notifications and lives in `ombaro.messaging`. docs/campaigns.md describes the whole.
"""
