// JPIP sessions and channels (ISO/IEC 15444-9 Annex B, reference 8.4): a session is bound to
// one target and holds the cache model shared by its channels; a channel is an opaque random id
// (cid), independent of TCP connections. Requests of one session run one at a time, in arrival
// order, with a short queue (503 beyond it). Sessions idle longer than the timeout are dropped;
// their number is bounded (503 for a new one when full) and so is the memory of all cache models
// (least recently used sessions are dropped first; their clients get 404 and open a new channel).

import { randomBytes } from 'node:crypto';
import { ImageServerError } from '../../core/errors.js';
import type { StreamType } from './fields.js';
import { CacheModel } from './model.js';

export interface Session {
  readonly id: string;
  /** The target as the client named it (percent-decoded); resolved again on every request. */
  readonly target: string;
  /** Target id of the file version the model describes. */
  tid: string;
  readonly model: CacheModel;
  readonly channels: Set<string>;
  /** Stream type granted at cnew, the default for the session's requests. */
  readonly type: StreamType;
  lastUsed: number;
  /** Tail of the queue of this session's requests. */
  tail: Promise<unknown>;
  queued: number;
}

export interface SessionOptions {
  readonly timeoutMs: number;
  readonly maxSessions: number;
  /** Bound on the estimated memory of all cache models. */
  readonly maxModelBytes: number;
  /** Requests that may wait behind the running one, per session. */
  readonly maxQueue?: number;
  readonly now?: () => number;
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>();
  private readonly channels = new Map<string, Session>();
  private readonly now: () => number;
  private lastSweep = 0;
  readonly stats = { opened: 0, expired: 0, evicted: 0, refused: 0 };

  constructor(private readonly options: SessionOptions) {
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.sessions.size;
  }

  get channelCount(): number {
    return this.channels.size;
  }

  /** Estimated bytes of every cache model. */
  get modelBytes(): number {
    let n = 0;
    for (const s of this.sessions.values()) n += s.model.approxBytes;
    return n;
  }

  private newId(): string {
    return randomBytes(16).toString('base64url');
  }

  /** Drops idle sessions (at most once a second unless forced). */
  sweep(force = false): void {
    const now = this.now();
    if (!force && now - this.lastSweep < 1000) return;
    this.lastSweep = now;
    for (const s of this.sessions.values()) {
      if (s.queued === 0 && now - s.lastUsed > this.options.timeoutMs) {
        this.drop(s);
        this.stats.expired++;
      }
    }
  }

  private drop(s: Session): void {
    this.sessions.delete(s.id);
    for (const cid of s.channels) this.channels.delete(cid);
    s.channels.clear();
    s.model.clear();
  }

  /** A new session with its first channel. Throws UNAVAILABLE (503) when the limit is reached. */
  open(target: string, tid: string, type: StreamType): { session: Session; cid: string } {
    this.sweep(true);
    if (this.sessions.size >= this.options.maxSessions) {
      this.stats.refused++;
      throw new ImageServerError('UNAVAILABLE', `Too many JPIP sessions (${this.options.maxSessions}); try again later`);
    }
    const session: Session = {
      id: this.newId(),
      target,
      tid,
      model: new CacheModel(),
      channels: new Set(),
      type,
      lastUsed: this.now(),
      tail: Promise.resolve(),
      queued: 0,
    };
    this.sessions.set(session.id, session);
    this.stats.opened++;
    return { session, cid: this.addChannel(session) };
  }

  /** Another channel sharing the session's cache model. */
  addChannel(session: Session): string {
    const cid = this.newId();
    session.channels.add(cid);
    this.channels.set(cid, session);
    return cid;
  }

  /** The session of a channel, or undefined when the channel is unknown, closed or expired. */
  byChannel(cid: string): Session | undefined {
    this.sweep();
    const s = this.channels.get(cid);
    if (!s) return undefined;
    if (s.queued === 0 && this.now() - s.lastUsed > this.options.timeoutMs) {
      this.drop(s);
      this.stats.expired++;
      return undefined;
    }
    return s;
  }

  /** Closes channels (`*` = all channels of `session`); a session without channels ends. */
  close(cids: readonly string[], session?: Session): void {
    const list = cids.includes('*') ? [...(session?.channels ?? [])] : cids;
    for (const cid of list) {
      const s = this.channels.get(cid);
      if (!s) continue;
      this.channels.delete(cid);
      s.channels.delete(cid);
      if (s.channels.size === 0) this.drop(s);
    }
  }

  /**
   * Runs `fn` when the session's earlier requests are done. Throws UNAVAILABLE (503) when too
   * many requests already wait.
   */
  async run<T>(session: Session, fn: () => Promise<T>): Promise<T> {
    if (session.queued > (this.options.maxQueue ?? 4)) throw new ImageServerError('UNAVAILABLE', 'JPIP channel busy: too many requests queued');
    session.queued++;
    const result = session.tail.then(fn);
    session.tail = result.catch(() => undefined);
    try {
      return await result;
    } finally {
      session.queued--;
      session.lastUsed = this.now();
      this.limitMemory(session);
    }
  }

  /** Drops least recently used sessions (never `keep`) while the models use too much memory. */
  private limitMemory(keep: Session): void {
    let total = this.modelBytes;
    if (total <= this.options.maxModelBytes) return;
    const idle = [...this.sessions.values()].filter((s) => s !== keep && s.queued === 0).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const s of idle) {
      if (total <= this.options.maxModelBytes) break;
      total -= s.model.approxBytes;
      this.drop(s);
      this.stats.evicted++;
    }
  }

  clear(): void {
    for (const s of [...this.sessions.values()]) this.drop(s);
  }
}
