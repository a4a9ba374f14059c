"""The channel layer: Redis (external) or the in-memory layer (embedded)."""

from __future__ import annotations

from .base import Broker, BrokerUnavailable


class RedisLayer(Broker):
    protocol = "redis"
    embedded_name = "in-memory channel layer"
    external_name = "Redis (channels-redis)"
    default_port = 6379
    url_schemes = ("redis", "rediss", "unix")

    @property
    def url(self) -> str:
        return "in-process" if self.embedded else self.external_url

    def check(self, timeout: float = 3.0) -> None:
        if self.embedded:
            return
        import redis

        try:
            redis.Redis.from_url(self.external_url, socket_connect_timeout=timeout, socket_timeout=timeout).ping()
        except Exception as exc:  # noqa: BLE001 - redis raises several types
            raise BrokerUnavailable(f"Redis at {self.external_url} is not reachable: {exc}") from None
