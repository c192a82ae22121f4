// JPIP sessions: channels sharing a model, expiry on a fake clock, the session limit (503),
// the model memory bound (oldest idle session dropped), cclose, one-at-a-time requests, and
// sessions shared through a folder by two stores (two worker processes).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ImageServerError } from '../../../src/core/errors.js';
import { SessionStore } from '../../../src/protocols/jpip/sessions.js';

function store(opts: Partial<{ timeoutMs: number; maxSessions: number; maxModelBytes: number }> = {}) {
  let now = 1_000_000;
  const s = new SessionStore({ timeoutMs: 60_000, maxSessions: 10, maxModelBytes: 1 << 20, ...opts, now: () => now });
  return { s, advance: (ms: number) => (now += ms) };
}

describe('SessionStore', () => {
  it('opens sessions with unguessable channel ids and adds channels sharing the model', async () => {
    const { s } = store();
    const a = s.open('a.jp2', 'tid', 'jpp-stream');
    const b = s.open('a.jp2', 'tid', 'jpp-stream');
    expect(a.cid).toMatch(/^[A-Za-z0-9_-]{30}$/);
    expect(a.cid.slice(0, 22)).toBe(a.session.id);
    expect(a.cid).not.toBe(b.cid);
    const extra = s.addChannel(a.session);
    expect(await s.channel(extra)).toBe(a.session);
    expect(await s.channel(a.cid)).toBe(a.session);
    expect(await s.channel('nope')).toBeUndefined();
    expect(s.size).toBe(2);
    expect(s.channelCount).toBe(3);
  });

  it('expires idle sessions', async () => {
    const { s, advance } = store({ timeoutMs: 1000 });
    const a = s.open('a.jp2', 't', 'jpp-stream');
    advance(900);
    await s.run(a.session, async () => undefined); // use refreshes it
    advance(900);
    expect(await s.channel(a.cid)).toBe(a.session);
    advance(1100);
    expect(await s.channel(a.cid)).toBeUndefined();
    expect(s.size).toBe(0);
    expect(s.stats.expired).toBe(1);
  });

  it('refuses a new session beyond the limit with 503', () => {
    const { s, advance } = store({ maxSessions: 2, timeoutMs: 1000 });
    s.open('a', 't', 'jpp-stream');
    s.open('b', 't', 'jpp-stream');
    let err: unknown;
    try {
      s.open('c', 't', 'jpp-stream');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ImageServerError);
    expect((err as ImageServerError).status).toBe(503);
    advance(2000); // the old ones expire, making room
    expect(() => s.open('c', 't', 'jpp-stream')).not.toThrow();
  });

  it('drops the least recently used sessions when the models use too much memory', async () => {
    const { s, advance } = store({ maxModelBytes: 48 * 1000 });
    const a = s.open('a', 't', 'jpp-stream');
    const b = s.open('b', 't', 'jpp-stream');
    await s.run(a.session, async () => {
      for (let i = 0; i < 600; i++) a.session.model.add(0, 0, i, 10);
    });
    advance(10);
    await s.run(b.session, async () => {
      for (let i = 0; i < 600; i++) b.session.model.add(0, 0, i, 10);
    });
    expect(await s.channel(a.cid)).toBeUndefined();
    expect(await s.channel(b.cid)).toBe(b.session);
    expect(s.stats.evicted).toBe(1);
    expect(s.modelBytes).toBeLessThanOrEqual(48 * 1000);
  });

  it('closes channels one by one or all at once; the session ends with its last channel', async () => {
    const { s } = store();
    const a = s.open('a', 't', 'jpp-stream');
    const c2 = s.addChannel(a.session);
    await s.close([a.cid]);
    expect(await s.channel(a.cid)).toBeUndefined();
    expect(await s.channel(c2)).toBe(a.session);
    await s.close(['*'], a.session);
    expect(await s.channel(c2)).toBeUndefined();
    expect(s.size).toBe(0);
  });

  it('runs the requests of a session one at a time, in order, and refuses a long queue', async () => {
    const { s } = store();
    const a = s.open('a', 't', 'jpp-stream');
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = s.run(a.session, async () => {
      order.push('1 start');
      await gate;
      order.push('1 end');
    });
    const second = s.run(a.session, async () => {
      order.push('2');
    });
    const queued = [3, 4, 5].map(() => s.run(a.session, async () => undefined));
    await expect(s.run(a.session, async () => undefined)).rejects.toMatchObject({ status: 503 });
    release();
    await Promise.all([first, second, ...queued]);
    expect(order).toEqual(['1 start', '1 end', '2']);
  });

  it('shares sessions between workers through a folder', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iipsrv-jpip-sessions-'));
    try {
      const opts = { timeoutMs: 60_000, maxSessions: 10, maxModelBytes: 1 << 20, shared: dir };
      const w1 = new SessionStore(opts);
      const w2 = new SessionStore(opts);
      const { session, cid } = w1.open('a.jp2', 'tid1', 'jpt-stream');
      await w1.run(session, async () => session.model.add(0, 6, 0, 123));
      expect(fs.readdirSync(dir)).toEqual([`${session.id}.json`]);
      // The channel's next request reaches the other worker: same target, type and model.
      const there = await w2.channel(cid);
      expect(there).toMatchObject({ id: session.id, target: 'a.jp2', tid: 'tid1', type: 'jpt-stream' });
      expect(there!.model.held(0, 6, 0)).toBe(123);
      await w2.run(there!, async () => there!.model.add(0, 0, 5, 40));
      // Back on the first worker, which sees the change.
      const back = await w1.channel(cid);
      expect(back).toBe(session);
      await w1.run(session, async () => expect(session.model.held(0, 0, 5)).toBe(40));
      // A channel added on one worker is known to the other; closing the last channel ends the session everywhere.
      const second = w2.addChannel(there!);
      await w2.run(there!, async () => undefined);
      expect(await w1.channel(second)).toBe(session);
      await w1.close(['*'], session);
      expect(fs.readdirSync(dir)).toEqual([]);
      expect(await w2.channel(cid)).toBeUndefined();
      expect(await w2.channel('x'.repeat(30))).toBeUndefined();
      expect(await w2.channel('../../etc/passwd.json..x')).toBeUndefined();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
