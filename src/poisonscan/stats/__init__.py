"""Mergeable summaries built per shard and merged in the driver (counts, sketches, clusters)."""
