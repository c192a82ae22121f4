// The packet index against the independent indexer (shared/tools/jpip/j2kcs.py --bins): every
// precinct data-bin id with its per-layer packet lengths, for all five progressions, tiles,
// tile-parts, image/tile origins, SOP/EPH, with PLT and from parsed packet headers. Also: PLT
// and header parsing agree (BYPASS/TERMALL included), and files JPIP cannot serve are refused
// with a clear error.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageServerError } from '../../../src/core/errors.js';
import { precinctDataBinId } from '../../../src/jpeg2000/geometry.js';
import { openJpeg2000 } from '../../../src/jpeg2000/index.js';
import { buildPacketIndex, PacketIndex, type PacketIndexData } from '../../../src/jpeg2000/packet-index.js';
import { precinctOfBin } from '../../../src/jpeg2000/precincts.js';
import { FIXTURES, makeJpipFixtures, sharedFixtureDir, tool, type FixtureName } from '../../fixtures/make-jpip.js';

const run = promisify(execFile);
let files: Record<FixtureName, string>;
let scratch: string;

beforeAll(async () => {
  files = await makeJpipFixtures();
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'iipsrv-jpip-index-'));
}, 120_000);

afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

async function index(file: string, lengths: 'auto' | 'parse' = 'auto'): Promise<{ idx: PacketIndex; data: PacketIndexData }> {
  const f = await openJpeg2000(file);
  try {
    const data = await buildPacketIndex(f.codestream, { lengths });
    return { idx: new PacketIndex(data, f.codestream.siz), data };
  } finally {
    await f.close();
  }
}

/** Our index in j2kcs.py's `--bins` format, sorted by bin id. */
function binsListing(idx: PacketIndex, data: PacketIndexData): string {
  const lines: Array<[number, string]> = [];
  for (let t = 0; t < idx.tileCount; t++) {
    const lay = idx.layout(t);
    for (const tcl of lay.components) {
      tcl.resolutions.forEach((res, r) => {
        for (let p = 0; p < res.across * res.down; p++) {
          const s = res.first + p;
          const id = precinctDataBinId(t, tcl.component, s, idx.components, idx.tileCount);
          const layers = Array.from({ length: lay.coding.layers }, (_, l) => data.lengths[idx.slot(t, tcl.component, s, l)]);
          lines.push([id, `I=${id} t=${t} c=${tcl.component} r=${r} p=${p} layers=[${layers.join(', ')}]`]);
        }
      });
    }
  }
  return lines
    .sort((a, b) => a[0] - b[0])
    .map((l) => l[1])
    .join('\n');
}

describe('packet index', () => {
  it.each(Object.keys(FIXTURES) as FixtureName[])('%s: bins and packet lengths equal j2kcs.py --bins', async (name) => {
    const ref = await tool('j2kcs.py', [files[name], '--bins']);
    expect(ref.code, ref.out).toBe(0);
    const expected = ref.out
      .split('\n')
      .filter((l) => l.startsWith('I='))
      .join('\n');
    const { idx, data } = await index(files[name]);
    expect(binsListing(idx, data)).toBe(expected);
    // Offsets: every packet inside the file, and bins ⇄ ids round-trip (checked in bulk: one
    // expect per packet would dominate the run time).
    const size = fs.statSync(files[name]).size;
    const outside = data.offsets.filter((o, i) => o + data.lengths[i] > size || o <= 0).length;
    expect(outside).toBe(0);
    const wrong: number[] = [];
    for (let t = 0; t < idx.tileCount; t++) {
      for (const tcl of idx.layout(t).components) {
        for (let s = 0; s < tcl.precincts; s++) {
          const id = precinctDataBinId(t, tcl.component, s, idx.components, idx.tileCount);
          const a = precinctOfBin(id, idx.tileCount, (x) => idx.layout(x));
          if (a?.tile !== t || a.component !== tcl.component || a.sequence !== s) wrong.push(id);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it.each(['rpclPlt', 'lrcpTiledPlt', 'pcrlTiledPlt', 'pcrlOrigin', 'lrcp97Tiled', 'bypassTermall'] as const)(
    '%s: lengths parsed from packet headers equal the PLT lengths',
    async (name) => {
      const plt = await index(files[name]);
      const parsed = await index(files[name], 'parse');
      expect(plt.data.source).toBe('PLT');
      expect(parsed.data.source).toBe('packet headers');
      expect(parsed.data.lengths).toEqual(plt.data.lengths);
      expect(parsed.data.offsets).toEqual(plt.data.offsets);
    },
  );

  it('records the tile-header pieces without SOT, SOD and PLT, and whole tile-parts', async () => {
    const { idx, data } = await index(files.rpclPlt);
    expect(data.tiles).toHaveLength(1);
    expect(idx.tileHeaderBytes(0)).toBe(0); // only SOT, PLT and SOD in OpenJPEG's tile-part headers
    expect(data.tiles[0].parts.length).toBe(8); // four tile-parts (-TP R)
    const buf = fs.readFileSync(files.rpclPlt);
    for (let i = 0; i < data.tiles[0].parts.length; i += 2) expect(buf.readUInt16BE(data.tiles[0].parts[i])).toBe(0xff90);
    expect(idx.tileBytes(0)).toBe(data.tiles[0].parts.reduce((n, v, i) => (i % 2 ? n + v : n), 0));
  });

  it('refuses progression order changes with a 415 naming them', async () => {
    const file = path.join(scratch, 'poc.j2k');
    await run('opj_compress', [
      '-i',
      path.join(sharedFixtureDir(), 'source.ppm'),
      '-o',
      file,
      '-n',
      '4',
      '-r',
      '40,10,1',
      '-POC',
      'T1=0,0,1,4,3,LRCP/T1=0,0,3,4,3,RLCP',
    ]);
    const err = await index(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageServerError);
    expect((err as ImageServerError).status).toBe(415);
    expect((err as ImageServerError).message).toMatch(/POC/);
  });

  it('refuses a truncated codestream with a 500 saying so', async () => {
    const file = path.join(scratch, 'truncated.j2k');
    const buf = fs.readFileSync(files.rlcpTiledNoPlt);
    fs.writeFileSync(file, buf.subarray(0, Math.floor(buf.length * 0.6)));
    const err = await index(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageServerError);
    expect((err as ImageServerError).status).toBe(500);
    expect((err as ImageServerError).message).toMatch(/truncated|runs past|ends after/);
  });

  it('refuses damaged packet headers without crashing', async () => {
    const file = path.join(scratch, 'garbled.jp2');
    const buf = Buffer.from(fs.readFileSync(files.rpclNoPlt));
    for (let i = Math.floor(buf.length / 3); i < buf.length - 2; i += 7) buf[i] = 0xff;
    fs.writeFileSync(file, buf);
    const err = await index(file).catch((e: unknown) => e);
    // Either a clean index of what is there (if the garbage happens to parse) or a clear error.
    if (err instanceof Error) expect((err as ImageServerError).status).toBe(500);
  });
});
