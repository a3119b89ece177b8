"""The notification tests share the campaign tests' fixtures: their database, the local provider
server and the in-process runtime."""

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
