"""The domain model: batch statuses and their moves, accounts, batches and records as snapshots.

The bottom layer: it imports nothing of loadbay's but `loadbay.errors`."""
