// The image-science configuration variables (src/config.ts) and the render settings built from
// them: names, defaults, iipsrv's clamping and fall-backs.

import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { passthroughAllowed, renderSettings, settingsKey } from '../../../src/image/render.js';

describe('configuration of image science', () => {
  it('defaults as iipsrv', () => {
    const { config, warnings } = loadConfig({});
    expect(warnings).toEqual([]);
    expect(config).toMatchObject({
      tiffCompression: 2,
      tiffQuality: 1,
      avifCodec: 0,
      watermark: '',
      watermarkProbability: 1,
      watermarkOpacity: 1,
      filenamePattern: '_pyr_',
    });
  });

  it('reads every variable', () => {
    const { config, warnings } = loadConfig({
      TIFF_COMPRESSION: '5',
      TIFF_QUALITY: '30',
      AVIF_CODEC: '1',
      WATERMARK: '/wm.tif',
      WATERMARK_PROBABILITY: '0.25',
      WATERMARK_OPACITY: '0.5',
    });
    expect(warnings).toEqual([]);
    // Zstandard caps TIFF_QUALITY at 19
    expect(config).toMatchObject({
      tiffCompression: 5,
      tiffQuality: 19,
      avifCodec: 1,
      watermark: '/wm.tif',
      watermarkProbability: 0.25,
      watermarkOpacity: 0.5,
    });
  });

  it('clamps and falls back by name', () => {
    const { config, warnings } = loadConfig({
      TIFF_COMPRESSION: '9',
      TIFF_QUALITY: '50',
      AVIF_CODEC: '7',
      WATERMARK_PROBABILITY: '2',
      WATERMARK_OPACITY: '-1',
    });
    expect(config).toMatchObject({ tiffCompression: 0, tiffQuality: 50, avifCodec: 0, watermarkProbability: 1, watermarkOpacity: 0 });
    expect(warnings.join('\n')).toMatch(/TIFF_COMPRESSION: expected 0 to 5 but received 9; using 0/);
    expect(warnings.join('\n')).toMatch(/AVIF_CODEC/);
    expect(warnings.join('\n')).toMatch(/WATERMARK_PROBABILITY/);
    expect(warnings.join('\n')).toMatch(/WATERMARK_OPACITY/);
    // Deflate (the default) caps TIFF_QUALITY at 9
    expect(loadConfig({ TIFF_QUALITY: '50' }).config.tiffQuality).toBe(9);
  });

  it('render settings carry the encoders, TIFF codec and watermark into the cache key', () => {
    const a = renderSettings(loadConfig({}).config);
    const b = renderSettings(loadConfig({ WATERMARK: '/wm.png' }).config);
    const c = renderSettings(loadConfig({ TIFF_COMPRESSION: '1' }).config);
    expect(new Set([settingsKey(a), settingsKey(b), settingsKey(c)]).size).toBe(3);
    expect(passthroughAllowed(a)).toBe(true);
    expect(passthroughAllowed(b)).toBe(false);
    // probability 0: the watermark can never apply, so it does not split the cache either
    const d = renderSettings(loadConfig({ WATERMARK: '/wm.png', WATERMARK_PROBABILITY: '0' }).config);
    expect(settingsKey(d)).toBe(settingsKey(a));
  });
});
