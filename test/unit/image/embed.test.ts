// Metadata embedding (src/image/embed.ts): each container's splice of the ICC profile and the
// XMP packet is read back by libvips (sharp metadata) exactly, with unchanged pixels; and the
// MAX_ICC and XMP decision rules.

import sharp, { type Sharp } from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ImageInfo } from '../../../src/core/image-info.js';
import type { OutputFormat } from '../../../src/core/view.js';
import { embedMetadata, profileFor, profileSpace, xmpFor } from '../../../src/image/embed.js';
import { IMAGE } from '../protocols/fixtures.js';

let p3: Buffer;

/** sharp's built-in Display P3 profile, taken from a JPEG that sharp tagged with it. */
async function displayP3(): Promise<Buffer> {
  const tagged = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } })
    .withIccProfile('p3')
    .jpeg()
    .toBuffer();
  return (await sharp(tagged).metadata()).icc!;
}

/** A profile of another colour space: P3's bytes with the header's space set to `space`. */
function withSpace(icc: Buffer, space: string): Buffer {
  const b = Buffer.from(icc);
  b.write(space, 16, 'latin1');
  return b;
}

beforeAll(async () => {
  p3 = await displayP3();
});

// A 37×23 pattern with alpha variants: odd sizes catch width/height slips in the WebP header.
function pattern(channels: 3 | 4 | 1): Sharp {
  const w = 37;
  const h = 23;
  const data = Buffer.alloc(w * h * channels);
  for (let i = 0; i < w * h; i++)
    for (let c = 0; c < channels; c++) data[i * channels + c] = c === 3 ? 128 + (i % 100) : (i * (c + 3)) % 256;
  const img = sharp(data, { raw: { width: w, height: h, channels } });
  return channels === 1 ? img.toColourspace('b-w') : img;
}

const ENCODERS: Record<Exclude<OutputFormat, 'avif'>, (s: Sharp) => Sharp> = {
  jpg: (s) => s.jpeg({ quality: 90 }),
  png: (s) => s.png(),
  webp: (s) => s.webp({ quality: 80 }),
  tif: (s) => s.tiff({ compression: 'deflate' }),
};

describe('embedMetadata: ICC profiles', () => {
  for (const [format, encode] of Object.entries(ENCODERS) as [Exclude<OutputFormat, 'avif'>, (s: Sharp) => Sharp][]) {
    for (const channels of [3, 4, 1] as const) {
      if (format === 'jpg' && channels === 4) continue;
      it(`${format}, ${channels} band(s): libvips reads the profile back; pixels and size unchanged`, async () => {
        const plain = await encode(pattern(channels)).toBuffer();
        const icc = channels === 1 ? withSpace(p3, 'GRAY') : p3;
        const tagged = embedMetadata(plain, format, { icc });
        expect(tagged.length).toBeGreaterThan(plain.length);
        const meta = await sharp(tagged).metadata();
        expect(meta.icc?.equals(icc)).toBe(true);
        expect([meta.width, meta.height, meta.channels]).toEqual([37, 23, channels === 1 && format === 'webp' ? 3 : channels]);
        const before = await sharp(plain, { ignoreIcc: true }).raw().toBuffer();
        const after = await sharp(tagged, { ignoreIcc: true }).raw().toBuffer();
        expect(after.equals(before)).toBe(true);
      });
    }
  }

  it('WebP that is already extended (VP8X, lossy with alpha): sets the ICC flag and keeps one VP8X', async () => {
    const plain = await pattern(4).webp({ quality: 80 }).toBuffer();
    expect(plain.toString('latin1', 12, 16)).toBe('VP8X');
    const tagged = embedMetadata(plain, 'webp', { icc: p3 });
    expect(tagged[20] & 0x30).toBe(0x30); // ICC and alpha
    expect(tagged.toString('latin1').split('VP8X').length - 1).toBe(1);
    expect(tagged.readUInt32LE(4)).toBe(tagged.length - 8);
  });

  it('JPEG: profiles over 65519 bytes go in numbered APP2 segments, after a JFIF APP0', async () => {
    // sharp writes no APP0; put a JFIF one in as other encoders (and iipsrv) write it.
    const bare = await pattern(3).jpeg().toBuffer();
    const app0 = Buffer.from([0xff, 0xe0, 0, 16, ...Buffer.from('JFIF\0', 'latin1'), 1, 1, 0, 0, 1, 0, 1, 0, 0]);
    const plain = Buffer.concat([bare.subarray(0, 2), app0, bare.subarray(2)]);
    const big = Buffer.concat([p3, Buffer.alloc(140_000, 7)]);
    const tagged = embedMetadata(plain, 'jpg', { icc: big });
    // APP0 stays first; then three APP2 "ICC_PROFILE" segments numbered 1..3 of 3.
    expect(tagged.subarray(0, 2 + app0.length).equals(plain.subarray(0, 2 + app0.length))).toBe(true);
    let at = 2 + app0.length;
    const parts: Buffer[] = [];
    for (let seq = 1; seq <= 3; seq++) {
      expect(tagged.subarray(at, at + 2)).toEqual(Buffer.from([0xff, 0xe2]));
      const len = tagged.readUInt16BE(at + 2);
      expect(tagged.toString('latin1', at + 4, at + 16)).toBe('ICC_PROFILE\0');
      expect([tagged[at + 16], tagged[at + 17]]).toEqual([seq, 3]);
      parts.push(tagged.subarray(at + 18, at + 2 + len));
      at += 2 + len;
    }
    expect(Buffer.concat(parts).equals(big)).toBe(true);
    expect((await sharp(tagged).metadata()).width).toBe(37);
  });

  it('leaves bytes it does not recognise, and AVIF, unchanged', () => {
    const junk = Buffer.from('not an image at all');
    for (const f of ['jpg', 'png', 'webp', 'tif', 'avif'] as const) expect(embedMetadata(junk, f, { icc: p3 })).toBe(junk);
  });
});

const XMP = Buffer.from(
  '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">' +
    '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:rights>© Museum</dc:rights></rdf:Description>' +
    '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>',
  'utf8',
);

describe('embedMetadata: XMP, alone and with a profile', () => {
  for (const [format, encode] of Object.entries(ENCODERS) as [Exclude<OutputFormat, 'avif'>, (s: Sharp) => Sharp][]) {
    it(`${format}: libvips reads the packet (and the profile) back; pixels unchanged`, async () => {
      const plain = await encode(pattern(3)).toBuffer();
      for (const e of [{ xmp: XMP }, { xmp: XMP, icc: p3 }]) {
        const tagged = embedMetadata(plain, format, e);
        const meta = await sharp(tagged).metadata();
        expect(meta.xmp?.toString('utf8'), format).toBe(XMP.toString('utf8'));
        if (e.icc) expect(meta.icc?.equals(p3), format).toBe(true);
        expect((await sharp(tagged, { ignoreIcc: true }).raw().toBuffer()).equals(await sharp(plain).raw().toBuffer())).toBe(true);
      }
    });
  }

  it('xmpFor: regions only (not tiles), not AVIF, not over one JPEG segment', () => {
    const info: ImageInfo = { ...IMAGE, metadata: { xmp: XMP.toString('utf8') } };
    expect(Buffer.from(xmpFor(info, { format: 'jpg' })!).equals(XMP)).toBe(true);
    expect(xmpFor(info, { format: 'png', tile: { col: 0, row: 0 } })).toBeUndefined();
    expect(xmpFor(info, { format: 'avif' })).toBeUndefined();
    const big: ImageInfo = { ...IMAGE, metadata: { xmp: 'x'.repeat(70_000) } };
    expect(xmpFor(big, { format: 'jpg' })).toBeUndefined();
    expect(xmpFor(big, { format: 'png' })?.length).toBe(70_000);
    expect(xmpFor(IMAGE, { format: 'jpg' })).toBeUndefined();
  });
});

describe('profileFor (MAX_ICC and when the profile still describes the output)', () => {
  // The protocol tests' RGB image, carrying P3.
  const info = (over: Partial<ImageInfo> = {}): ImageInfo => ({ ...IMAGE, icc: p3, ...over });
  const view = { format: 'jpg' as const, quality: 'default' as const };

  it('reads the colour space from the header', () => {
    expect(profileSpace(p3)).toBe('RGB ');
    expect(profileSpace(withSpace(p3, 'GRAY'))).toBe('GRAY');
    expect(profileSpace(new Uint8Array(10))).toBe('');
  });

  it('MAX_ICC: 0 never, −1 any size, else only profiles smaller than it', () => {
    expect(profileFor(info(), view, 0)).toBeUndefined();
    expect(profileFor(info(), view, -1)).toBe(p3);
    expect(profileFor(info(), view, p3.length + 1)).toBe(p3);
    expect(profileFor(info(), view, p3.length)).toBeUndefined();
    expect(profileFor(info({ icc: undefined }), view, -1)).toBeUndefined();
  });

  it('not after colormap, hill shading, colour twist or band selection; kept for contrast and gamma', () => {
    for (const processing of [
      { colormap: 'jet' as const },
      { hillshade: { horizontal: 1, vertical: 2 } },
      { twist: [[1, 0, 0]] },
      { bands: [2, 1, 0] },
    ]) {
      expect(profileFor(info(), { ...view, processing }, -1)).toBeUndefined();
    }
    expect(profileFor(info(), { ...view, processing: { contrast: 1.5, gamma: 0.8 } }, -1)).toBe(p3);
  });

  it('RGB profiles only for colour output; GRAY profiles for grey images; not for CIELAB or AVIF', () => {
    expect(profileFor(info(), { ...view, quality: 'color' }, -1)).toBe(p3);
    expect(profileFor(info(), { ...view, quality: 'gray' }, -1)).toBeUndefined();
    expect(profileFor(info(), { ...view, quality: 'bitonal' }, -1)).toBeUndefined();
    expect(profileFor(info({ channels: 1 }), view, -1)).toBeUndefined();
    const grey = withSpace(p3, 'GRAY');
    expect(profileFor(info({ channels: 1, colourSpace: 'grey', icc: grey }), { ...view, quality: 'gray' }, -1)).toBe(grey);
    expect(profileFor(info({ icc: withSpace(p3, 'CMYK') }), view, -1)).toBeUndefined();
    expect(profileFor(info({ colourSpace: 'cielab' }), view, -1)).toBeUndefined();
    expect(profileFor(info(), { ...view, format: 'avif' }, -1)).toBeUndefined();
  });
});
