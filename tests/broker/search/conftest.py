"""The crawler's fixtures (a broker crawler over providers in memory), for the crawler's tests
in other modules than the one that defines them."""

from tests.broker.search.test_crawler import clock, crawler, world

__all__ = ["clock", "crawler", "world"]
