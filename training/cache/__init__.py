"""Side-data cache: extract once, memory-map, sample fast. See build.py for the layout."""

from training.cache.build import CacheSpec, build_cache, extract_clip
from training.cache.dataset import STREAMS, CachedClips, cache_stream, find_cache

__all__ = ["CacheSpec", "build_cache", "extract_clip", "CachedClips", "cache_stream", "find_cache", "STREAMS"]
