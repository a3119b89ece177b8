"""Campaigns: marketing messages to an audience over email, SMS, WhatsApp, push and in-app.

- `lifecycle`: create, approve (with the spend guard), send now, pause, resume, cancel;
- `audience`: `target_audience` as SQL, counts per channel and the cost estimate;
- `content`: per-channel content and its templating (name, tier, city);
- `sending`: the start (audience streamed into chunk jobs), one chunk, the minutely tick;
- `delivery`: claim -> provider call -> record, shared with booking notifications;
- `throttle`: the per-provider token bucket in Redis;
- `webhooks`: provider status events, de-duplicated, never moving a delivery backwards;
- `reconcile`: deliveries whose call timed out or whose worker died;
- `unsubscribe`: signed one-click unsubscribe tokens;
- `metrics`: figures from deliveries, and conversions.

docs/campaigns.md describes the whole.
"""
