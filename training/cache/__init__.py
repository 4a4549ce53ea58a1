"""Side-data cache: extract once, memory-map, sample fast. See build.py for the layout.

Build with :func:`build_cache` (keyed by the preprocessing spec AND the dataset's content); read
what a cache holds with :func:`load_index`, :func:`is_complete` and :func:`cache_statistics`
(index.py), never by parsing its shard files.
"""

from training.cache.build import (FLOW_SOURCES, CacheSpec, build_cache, cache_key, cache_location, dataset_fingerprint,
                                  extract_clip, list_clips)
from training.cache.dataset import CachedClips, Companion, clip_frames, find_cache, specs_for_streams
from training.cache.index import CacheStatistics, cache_statistics, is_complete, load_index, read_meta

__all__ = ["FLOW_SOURCES", "CacheSpec", "CacheStatistics", "CachedClips", "Companion", "build_cache",
           "cache_key", "cache_location", "cache_statistics", "clip_frames", "dataset_fingerprint", "extract_clip",
           "find_cache", "is_complete", "list_clips", "load_index", "read_meta", "specs_for_streams"]
