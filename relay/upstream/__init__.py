"""The upstream API as the relay sees it: one call, `fetch`, and what its answers mean."""

from relay.upstream.client import FetchResult, UpstreamClient

__all__ = ["FetchResult", "UpstreamClient"]
