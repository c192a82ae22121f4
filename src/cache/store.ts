// The cache-store contract. A store may answer synchronously (RAM) or asynchronously
// (Memcached), so one suite of tests and one lookup path serve every tier.

/** An encoded response body and what is needed to send it again. */
export interface CacheEntry {
  readonly contentType: string;
  readonly body: Buffer;
}

export interface CacheStore {
  readonly name: string;
  get(key: string): CacheEntry | undefined | Promise<CacheEntry | undefined>;
  set(key: string, entry: CacheEntry): void | Promise<void>;
  delete(key: string): void | Promise<void>;
  clear(): void | Promise<void>;
}
