"""Fixtures of the campaign and notification tests (tests/campaigns/fixtures.py): a database of their
own (audiences count every customer in it), the local provider server, the settings that point the
real SDKs at it and an in-process runtime. Their data comes from tests.factories.campaigns, the job
runner from tests.campaigns.helpers."""

from tests.campaigns.fixtures import (  # noqa: F401
    camp_engine,
    camp_redis_url,
    camp_url,
    make_runtime,
    messaging_env,
    provider_server,
    rt,
    sendgrid_key,
    server,
)
