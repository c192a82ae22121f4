import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';

describe('configuration from the environment', () => {
  it('uses iipsrv defaults', () => {
    const { config, warnings } = loadConfig({});
    expect(warnings).toEqual([]);
    expect(config).toMatchObject({
      filesystemPrefix: '',
      filesystemSuffix: '',
      maxImageCacheBytes: 10 * 1024000,
      jpegQuality: 75,
      maxCvt: 5000,
      allowUpscaling: true,
      interpolation: 1,
      cors: '',
      baseUrl: '',
      cacheControl: 'max-age=86400',
      verbosity: 1,
      iiifVersion: 3,
      codecPassthrough: true,
      maxMetadataCacheSize: 1000,
    });
    expect(config.uriMap).toBeUndefined();
    expect(config.logfile).toMatch(/iipsrv\.log$/);
  });

  it('reads every variable by its iipsrv name', () => {
    const { config, warnings } = loadConfig({
      FILESYSTEM_PREFIX: '/images/',
      FILESYSTEM_SUFFIX: '.tif',
      MAX_IMAGE_CACHE_SIZE: '2.5',
      JPEG_QUALITY: '90',
      MAX_CVT: '3000',
      ALLOW_UPSCALING: '0',
      INTERPOLATION: '0',
      CORS: '*',
      BASE_URL: 'https://example.org/iiif/',
      CACHE_CONTROL: 'no-store',
      LOGFILE: '/dev/stderr',
      VERBOSITY: '5',
      URI_MAP: 'iiif=>IIIF',
      MAX_IMAGE_METADATA_CACHE_SIZE: '20',
    });
    expect(warnings).toEqual([]);
    expect(config).toMatchObject({
      filesystemPrefix: '/images/',
      filesystemSuffix: '.tif',
      maxImageCacheBytes: 2560000,
      jpegQuality: 90,
      maxCvt: 3000,
      allowUpscaling: false,
      interpolation: 0,
      cors: '*',
      baseUrl: 'https://example.org/iiif/',
      cacheControl: 'no-store',
      logfile: '/dev/stderr',
      verbosity: 5,
      uriMap: { prefix: 'iiif', protocol: 'IIIF' },
      maxMetadataCacheSize: 20,
    });
  });

  it.each([
    ['JPEG_QUALITY', 'high', 'jpegQuality', 75],
    ['JPEG_QUALITY', '150', 'jpegQuality', 100],
    ['JPEG_QUALITY', '0', 'jpegQuality', 1],
    ['MAX_IMAGE_CACHE_SIZE', '-3', 'maxImageCacheBytes', 0],
    ['ALLOW_UPSCALING', 'maybe', 'allowUpscaling', true],
    ['VERBOSITY', 'x', 'verbosity', 1],
    ['IIIF_VERSION', '7', 'iiifVersion', 3],
    ['URI_MAP', 'nonsense', 'uriMap', undefined],
  ] as const)('reports %s=%s by name and falls back', (name, value, key, expected) => {
    const { config, warnings } = loadConfig({ [name]: value });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(name);
    expect(config[key]).toEqual(expected);
  });

  it('keeps iipsrv special values of MAX_CVT', () => {
    expect(loadConfig({ MAX_CVT: '-1' }).config.maxCvt).toBe(-1);
    expect(loadConfig({ MAX_CVT: '0' }).config.maxCvt).toBe(5000);
    expect(loadConfig({ MAX_CVT: '-7' }).config.maxCvt).toBe(1);
  });

  it('MAX_ICC: 65535 as documented, −1 and 0 kept, below −1 reported and clamped', () => {
    expect(loadConfig({}).config.maxIcc).toBe(65535);
    expect(loadConfig({ MAX_ICC: '-1' }).config.maxIcc).toBe(-1);
    expect(loadConfig({ MAX_ICC: '0' }).config.maxIcc).toBe(0);
    const bad = loadConfig({ MAX_ICC: '-5' });
    expect(bad.config.maxIcc).toBe(-1);
    expect(bad.warnings[0]).toContain('MAX_ICC');
  });

  it('IIIF_EXTRA_INFO: members with or without braces or a leading comma; bad text reported and dropped', () => {
    const members = { partOf: [{ id: 'm' }] };
    expect(loadConfig({ IIIF_EXTRA_INFO: '"partOf": [{"id": "m"}]' }).config.iiifExtraInfo).toEqual(members);
    expect(loadConfig({ IIIF_EXTRA_INFO: ', "partOf": [{"id": "m"}]' }).config.iiifExtraInfo).toEqual(members);
    expect(loadConfig({ IIIF_EXTRA_INFO: '{"partOf": [{"id": "m"}]}' }).config.iiifExtraInfo).toEqual(members);
    expect(loadConfig({}).config.iiifExtraInfo).toEqual({});
    const bad = loadConfig({ IIIF_EXTRA_INFO: 'partOf: x' });
    expect(bad.config.iiifExtraInfo).toEqual({});
    expect(bad.warnings[0]).toContain('IIIF_EXTRA_INFO');
  });

  it('parses URI_MAP forms', () => {
    expect(loadConfig({ URI_MAP: '/iiif=>iiif' }).config.uriMap).toEqual({ prefix: 'iiif', protocol: 'IIIF' });
    expect(loadConfig({ URI_MAP: 'zoom=>Zoomify' }).config.uriMap).toEqual({ prefix: 'zoom', protocol: 'Zoomify' });
    expect(loadConfig({ URI_MAP: '=>IIIF' }).config.uriMap).toEqual({ prefix: '', protocol: 'IIIF' });
  });
});
