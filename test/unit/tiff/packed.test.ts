// Packed 2- to 14-bit samples (decoders/tiff/samples.ts): rows padded to a byte, most
// significant bit first, widened by bit replication; MinIsWhite inverted; no predictor.

import { describe, expect, it } from 'vitest';
import { decodeTileBytes, storedRowBytes, unpackSamples, type SampleLayout } from '../../../decoders/tiff/samples.js';

const layout = (packedBits: number, spp = 1, extra: Partial<SampleLayout> = {}): SampleLayout => ({
  samplesPerPixel: spp,
  bits: packedBits < 8 ? 8 : 16,
  float: false,
  compression: 1,
  predictor: 1,
  littleEndian: true,
  packedBits,
  ...extra,
});

/** Packs rows of values as a bit string, each row padded with zeros to whole bytes. */
function pack(rows: number[][], n: number): Uint8Array {
  const bits = rows
    .map((r) => r.map((v) => v.toString(2).padStart(n, '0')).join(''))
    .map((s) => s.padEnd(Math.ceil(s.length / 8) * 8, '0'));
  const all = bits.join('');
  return Uint8Array.from({ length: all.length / 8 }, (_, i) => parseInt(all.slice(i * 8, i * 8 + 8), 2));
}

describe('packed samples', () => {
  it('6-bit rows of 3 pixels take 3 bytes each (18 bits, padded)', () => {
    expect(storedRowBytes(layout(6), 3)).toBe(3);
    const rows = [
      [63, 0, 33],
      [1, 62, 32],
    ];
    const out = unpackSamples(pack(rows, 6), layout(6), 3, 2);
    // 6 → 8 bits: v·4 + v/16.
    expect([...out]).toEqual(rows.flat().map((v) => (v << 2) | (v >> 4)));
  });

  it('12-bit RGB widens to 16 bits: 4095 → 65535, 0x800 → 0x8008', () => {
    const rows = [[4095, 0, 0x800, 1, 2, 3]];
    const out = unpackSamples(pack(rows, 12), layout(12, 3), 2, 1);
    expect([...out]).toEqual([65535, 0, 0x8008, 0x0010, 0x0020, 0x0030]);
  });

  it('2, 4, 10 and 14 bits keep 0 and the maximum at the ends of the range', () => {
    for (const n of [2, 4, 10, 14]) {
      const max = 2 ** n - 1;
      const out = unpackSamples(pack([[0, max]], n), layout(n), 2, 1);
      expect([...out], `${n} bits`).toEqual([0, n < 8 ? 255 : 65535]);
    }
  });

  it('MinIsWhite is inverted; a predictor is refused; short data reads as zeros', () => {
    expect([...unpackSamples(pack([[0, 15]], 4), layout(4, 1, { minIsWhite: true }), 2, 1)]).toEqual([255, 0]);
    expect(() => decodeTileBytes(new Uint8Array(4), layout(12, 1, { predictor: 2 }), 2, 1)).toThrow(/predictor on 12-bit/);
    expect([...unpackSamples(new Uint8Array(0), layout(12), 2, 1)]).toEqual([0, 0]);
  });
});
