// The persisted packet index: written atomically to the caching folder, reused by a new store
// (a restart), rebuilt when the file's size or mtime changes, ignored when damaged or foreign,
// and optional (an unwritable folder leaves indexes in memory with one log line).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deserializeIndex, fileKey, IndexStore, serializeIndex, type FileIdentity } from '../../../src/jpeg2000/index-store.js';
import { makeJpipFixtures, type FixtureName } from '../../fixtures/make-jpip.js';

let files: Record<FixtureName, string>;
let dir: string;

beforeAll(async () => {
  files = await makeJpipFixtures();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iipsrv-jpip-store-'));
}, 120_000);

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function identity(file: string): FileIdentity {
  const st = fs.statSync(file);
  return { path: fs.realpathSync(file), size: st.size, mtimeMs: Math.floor(st.mtimeMs) };
}

describe('IndexStore', () => {
  it('persists an index and reuses it after a restart', async () => {
    const image = path.join(dir, 'a.j2k');
    fs.copyFileSync(files.rlcpTiledNoPlt, image);
    const cache = path.join(dir, 'cache1');
    const first = new IndexStore({ dir: cache });
    const t1 = await first.target(identity(image));
    const e1 = await first.codestream(t1, 0);
    expect(first.stats).toEqual({ built: 1, loaded: 0, persisted: 1 });
    const stored = fs.readdirSync(cache);
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatch(/^[0-9a-f]{40}-0\.jpix$/);

    const second = new IndexStore({ dir: cache });
    const e2 = await second.codestream(await second.target(identity(image)), 0);
    expect(second.stats).toEqual({ built: 0, loaded: 1, persisted: 0 });
    expect(e2.index.data.lengths).toEqual(e1.index.data.lengths);
    expect(e2.index.data.offsets).toEqual(e1.index.data.offsets);
    expect(e2.index.data.tiles).toEqual(e1.index.data.tiles);
    expect(e2.index.data.source).toBe('packet headers');
    // Memoised in memory: no second load.
    await second.codestream(await second.target(identity(image)), 0);
    expect(second.stats.loaded).toBe(1);
  });

  it('rebuilds when the file changes (size or mtime) and leaves no temporary files', async () => {
    const image = path.join(dir, 'b.j2k');
    fs.copyFileSync(files.lrcpTiledPlt, image);
    const cache = path.join(dir, 'cache2');
    const store = new IndexStore({ dir: cache });
    const before = await store.codestream(await store.target(identity(image)), 0);
    fs.copyFileSync(files.pcrlTiledPlt, image); // same size, different content and mtime
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(image, later, later);
    const restarted = new IndexStore({ dir: cache });
    const after = await restarted.codestream(await restarted.target(identity(image)), 0);
    expect(restarted.stats.built).toBe(1);
    expect(restarted.stats.loaded).toBe(0);
    expect(after.index.data.offsets).not.toEqual(before.index.data.offsets);
    expect(fs.readdirSync(cache).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(fs.readdirSync(cache)).toHaveLength(1); // same name, replaced
  });

  it('ignores a damaged or foreign index file and replaces it', async () => {
    const image = path.join(dir, 'c.jp2');
    fs.copyFileSync(files.rpclPlt, image);
    const cache = path.join(dir, 'cache3');
    const store = new IndexStore({ dir: cache });
    await store.codestream(await store.target(identity(image)), 0);
    const [name] = fs.readdirSync(cache);
    const full = fs.readFileSync(path.join(cache, name));
    fs.writeFileSync(path.join(cache, name), full.subarray(0, full.length - 5));
    const again = new IndexStore({ dir: cache });
    await again.codestream(await again.target(identity(image)), 0);
    expect(again.stats).toMatchObject({ built: 1, loaded: 0 });
    const id = identity(image);
    expect(deserializeIndex(Buffer.from('nonsense'), id, 0)).toBeUndefined();
    const good = fs.readFileSync(path.join(cache, name));
    expect(deserializeIndex(good, id, 0)).toBeDefined();
    expect(deserializeIndex(good, id, 1)).toBeUndefined();
    expect(deserializeIndex(good, { ...id, size: id.size + 1 }, 0)).toBeUndefined();
    expect(deserializeIndex(good, { ...id, path: '/elsewhere.jp2' }, 0)).toBeUndefined();
  });

  it('round-trips through serializeIndex', async () => {
    const store = new IndexStore({ dir: '' });
    const id = identity(files.pcrlOrigin);
    const e = await store.codestream(await store.target(id), 0);
    const back = deserializeIndex(serializeIndex(id, 0, e.index.data), id, 0);
    expect(back).toEqual(e.index.data);
  });

  it('keeps working in memory when the folder cannot be written, and says so once', async () => {
    const blocker = path.join(dir, 'not-a-dir');
    fs.writeFileSync(blocker, 'x');
    const logs: string[] = [];
    const store = new IndexStore({ dir: path.join(blocker, 'sub'), log: (m) => logs.push(m) });
    for (const f of [files.rpclPlt, files.cprlSopEph]) {
      const e = await store.codestream(await store.target(identity(f)), 0);
      expect(e.index.data.lengths.length).toBeGreaterThan(0);
    }
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/^JPIP_CACHE: cannot write packet indexes/);
  });

  it('gives every file version its own stable key', () => {
    const a = { path: '/x.jp2', size: 10, mtimeMs: 1 };
    expect(fileKey(a)).toBe(fileKey({ ...a }));
    expect(fileKey(a)).not.toBe(fileKey({ ...a, mtimeMs: 2 }));
  });
});
