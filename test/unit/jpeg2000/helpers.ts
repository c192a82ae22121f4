// Shared helpers of the JPEG 2000 tests: the fixture directory (files made by opj_compress, see
// test/fixtures/make-jp2.ts) and a reader of opj_dump's text output, the reference for the
// structure parser.

import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeJp2Fixtures, type Jp2Fixture } from '../../fixtures/make-jp2.js';

const run = promisify(execFile);

export interface Jp2FixtureSet {
  dir: string;
  files: Record<string, Jp2Fixture>;
  cleanup(): Promise<void>;
}

export async function setupJp2Fixtures(): Promise<Jp2FixtureSet> {
  const dir = await mkdtemp(join(tmpdir(), 'jp2-fixtures-'));
  const files = await makeJp2Fixtures(dir);
  return { dir, files, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface OpjDump {
  image: {
    x0: number;
    y0: number;
    x1: number;
    y1: number;
    numcomps: number;
    comps: Array<{ dx: number; dy: number; prec: number; sgnd: number }>;
  };
  tiles: { tx0: number; ty0: number; tdx: number; tdy: number; tw: number; th: number };
  tile: { csty: number; prg: number; numlayers: number; mct: number };
  comps: Array<{
    csty: number;
    numresolutions: number;
    cblkw: number;
    cblkh: number;
    cblksty: number;
    qmfbid: number;
    precincts: Array<[number, number]>;
    qntsty: number;
    numgbits: number;
    steps: Array<[number, number]>;
    roishift: number;
  }>;
  mainHeader: { start: number; end: number; markers: Array<{ type: number; pos: number; len: number }> };
}

const num = (s: string | undefined): number => {
  if (s === undefined) throw new Error('missing field in opj_dump output');
  return s.startsWith('0x') ? parseInt(s, 16) : Number(s);
};

/** Runs `opj_dump -i file` and reads the fields the parser is checked against. */
export async function opjDump(file: string): Promise<OpjDump> {
  const { stdout } = await run('opj_dump', ['-i', file]);
  const field = (text: string, name: string): string | undefined => new RegExp(`\\b${name}=(0x[0-9a-f]+|-?\\d+)`).exec(text)?.[1];
  const imageText = stdout.slice(stdout.indexOf('Image info'), stdout.indexOf('Codestream info'));
  const csText = stdout.slice(stdout.indexOf('Codestream info'), stdout.indexOf('Codestream index'));
  const idxText = stdout.slice(stdout.indexOf('Codestream index'));
  const compBlocks = imageText.split('component ').slice(1);
  const image = {
    x0: num(field(imageText, 'x0')),
    y0: num(field(imageText, 'y0')),
    x1: num(field(imageText, 'x1')),
    y1: num(field(imageText, 'y1')),
    numcomps: num(field(imageText, 'numcomps')),
    comps: compBlocks.map((b) => ({
      dx: num(field(b, 'dx')),
      dy: num(field(b, 'dy')),
      prec: num(field(b, 'prec')),
      sgnd: num(field(b, 'sgnd')),
    })),
  };
  const head = csText.slice(0, csText.indexOf('comp 0'));
  const defaultTile = head.slice(head.indexOf('default tile'));
  const compTexts = csText.split(/comp \d+ \{/).slice(1);
  const pairs = (line: string | undefined): Array<[number, number]> =>
    [...(line ?? '').matchAll(/\((-?\d+),(-?\d+)\)/g)].map((m) => [Number(m[1]), Number(m[2])] as [number, number]);
  const comps = compTexts.map((t) => ({
    csty: num(field(t, 'csty')),
    numresolutions: num(field(t, 'numresolutions')),
    cblkw: num(/cblkw=2\^(\d+)/.exec(t)?.[1]),
    cblkh: num(/cblkh=2\^(\d+)/.exec(t)?.[1]),
    cblksty: num(field(t, 'cblksty')),
    qmfbid: num(field(t, 'qmfbid')),
    precincts: pairs(/preccintsize \(w,h\)=([^\n]*)/.exec(t)?.[1]),
    qntsty: num(field(t, 'qntsty')),
    numgbits: num(field(t, 'numgbits')),
    steps: pairs(/stepsizes \(m,e\)=([^\n]*)/.exec(t)?.[1]),
    roishift: num(field(t, 'roishift')),
  }));
  const markers = [...idxText.matchAll(/type=(0x[0-9a-f]+), pos=(\d+), len=(\d+)/g)].map((m) => ({
    type: parseInt(m[1], 16),
    pos: Number(m[2]),
    len: Number(m[3]),
  }));
  return {
    image,
    tiles: {
      tx0: num(field(head, 'tx0')),
      ty0: num(field(head, 'ty0')),
      tdx: num(field(head, 'tdx')),
      tdy: num(field(head, 'tdy')),
      tw: num(field(head, 'tw')),
      th: num(field(head, 'th')),
    },
    tile: {
      csty: num(field(defaultTile, 'csty')),
      prg: num(field(defaultTile, 'prg')),
      numlayers: num(field(defaultTile, 'numlayers')),
      mct: num(field(defaultTile, 'mct')),
    },
    comps,
    mainHeader: {
      start: num(/Main header start position=(\d+)/.exec(idxText)?.[1]),
      end: num(/Main header end position=(\d+)/.exec(idxText)?.[1]),
      markers,
    },
  };
}
