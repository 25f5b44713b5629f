// Deduplication on webhook-id: the relay delivers at least once, and a redelivery keeps
// the event's id. One process only: with several, keep the ids in a shared store instead
// (Redis `SET key 1 NX PX <ttl>`, as the Python kit's RedisDeduplicator does).

export class SeenIds {
  // id -> expiry (ms); one ttl for all, so insertion order is expiry order
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly ttlMs = 7 * 24 * 3600 * 1000, // longer than the relay's retry schedule
    private readonly maxEntries = 100_000,
  ) {}

  /** True the first time an id is claimed (until it expires or is released). */
  claim(id: string, now = Date.now()): boolean {
    for (const [oldest, expires] of this.seen) {
      if (expires > now) break;
      this.seen.delete(oldest);
    }
    if (this.seen.has(id)) return false;
    this.seen.set(id, now + this.ttlMs);
    while (this.seen.size > this.maxEntries) {
      const oldest = this.seen.keys().next().value;
      if (oldest === undefined) break;
      this.seen.delete(oldest);
    }
    return true;
  }

  /** Forget a claim whose handling failed, so that the relay's retry is handled again. */
  release(id: string): void {
    this.seen.delete(id);
  }
}
