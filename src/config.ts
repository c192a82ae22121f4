// Server configuration from the environment, with iipsrv's variable names, defaults and
// clamping, so existing Apache/nginx/lighttpd/systemd set-ups keep working unchanged.
// Policy for bad values: every invalid value is reported by name at start-up and the default
// (or the nearest allowed value, as iipsrv clamps) is used; the server does not exit.

import os from 'node:os';
import path from 'node:path';

export type MappedProtocol = 'IIP' | 'IIIF' | 'Zoomify' | 'DeepZoom';

export interface UriMap {
  /** Path prefix without slashes, e.g. `iiif`; empty maps every path. */
  readonly prefix: string;
  readonly protocol: MappedProtocol;
}

export interface Config {
  readonly filesystemPrefix: string;
  readonly filesystemSuffix: string;
  readonly filenamePattern: string;
  /** In-RAM cache budget in bytes (MAX_IMAGE_CACHE_SIZE MB × 1 024 000, as iipsrv counts). */
  readonly maxImageCacheBytes: number;
  /** Number of open images kept (MAX_METADATA_CACHE_SIZE); -1 unlimited. */
  readonly maxMetadataCacheSize: number;
  readonly jpegQuality: number;
  readonly pngQuality: number;
  readonly webpQuality: number;
  readonly avifQuality: number;
  /** Largest output side; -1 unlimited. */
  readonly maxCvt: number;
  readonly allowUpscaling: boolean;
  /** 0 nearest, 1 bilinear, 2 bicubic, 3 lanczos3. */
  readonly interpolation: number;
  readonly codecPassthrough: boolean;
  /** CORS origin; empty = no CORS headers. */
  readonly cors: string;
  readonly baseUrl: string;
  readonly cacheControl: string;
  readonly logfile: string;
  readonly verbosity: number;
  readonly uriMap?: UriMap;
  readonly iiifVersion: number;
  readonly copyright: string;
  readonly memcachedServers: string;
  readonly memcachedTimeout: number;
  readonly decoderModules: string;
  readonly maxLayers: number;
  /** Send IIP errors with status 200 as iipsrv does (IIP_ERROR_STATUS_200=1). */
  readonly iipErrorStatus200: boolean;
}

export interface ConfigResult {
  readonly config: Config;
  /** One message per invalid variable, naming it. */
  readonly warnings: string[];
  /** Effective settings, for iipsrv-style `Setting X to Y` start-up lines. */
  readonly settings: Array<[string, string]>;
}

type Env = Readonly<Record<string, string | undefined>>;

class Reader {
  readonly warnings: string[] = [];
  readonly settings: Array<[string, string]> = [];
  constructor(private readonly env: Env) {}

  private raw(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  }

  str(name: string, def: string): string {
    const v = this.env[name] ?? def;
    this.settings.push([name, v]);
    return v;
  }

  num(name: string, def: number, opts: { min?: number; max?: number; integer?: boolean } = {}): number {
    const raw = this.raw(name);
    let v = def;
    if (raw !== undefined) {
      const n = Number(raw);
      if (!Number.isFinite(n) || (opts.integer && !Number.isInteger(n))) {
        this.warnings.push(`${name}: expected ${opts.integer ? 'an integer' : 'a number'} but received "${raw}"; using ${def}`);
      } else if (opts.min !== undefined && n < opts.min) {
        this.warnings.push(`${name}: ${raw} is below the minimum ${opts.min}; using ${opts.min}`);
        v = opts.min;
      } else if (opts.max !== undefined && n > opts.max) {
        this.warnings.push(`${name}: ${raw} is above the maximum ${opts.max}; using ${opts.max}`);
        v = opts.max;
      } else {
        v = n;
      }
    }
    this.settings.push([name, String(v)]);
    return v;
  }

  bool(name: string, def: boolean): boolean {
    const raw = this.raw(name);
    let v = def;
    if (raw !== undefined) {
      if (/^(1|true|yes|on)$/i.test(raw)) v = true;
      else if (/^(0|false|no|off)$/i.test(raw)) v = false;
      else this.warnings.push(`${name}: expected 0 or 1 but received "${raw}"; using ${def ? 1 : 0}`);
    }
    this.settings.push([name, v ? '1' : '0']);
    return v;
  }
}

const PROTOCOLS: Record<string, MappedProtocol> = { iip: 'IIP', iiif: 'IIIF', zoomify: 'Zoomify', deepzoom: 'DeepZoom' };

function parseUriMap(raw: string | undefined, warnings: string[]): UriMap | undefined {
  if (!raw || raw.trim() === '') return undefined;
  const m = /^\s*\/?([^=]*?)\/?\s*=>\s*(\w+)\s*$/.exec(raw);
  const protocol = m ? PROTOCOLS[m[2].toLowerCase()] : undefined;
  if (!m || !protocol) {
    warnings.push(`URI_MAP: expected "<prefix>=><IIP|IIIF|Zoomify|DeepZoom>" but received "${raw}"; URI mapping is off`);
    return undefined;
  }
  return { prefix: m[1], protocol };
}

export function loadConfig(env: Env = process.env): ConfigResult {
  const r = new Reader(env);
  const cacheMb = r.num('MAX_IMAGE_CACHE_SIZE', 10, { min: 0 });
  // iipsrv reads MAX_METADATA_CACHE_SIZE but documents MAX_IMAGE_METADATA_CACHE_SIZE: accept
  // both, the documented name winning when both are set.
  const metaName = env.MAX_IMAGE_METADATA_CACHE_SIZE !== undefined ? 'MAX_IMAGE_METADATA_CACHE_SIZE' : 'MAX_METADATA_CACHE_SIZE';
  let maxCvt = r.num('MAX_CVT', 5000, { integer: true });
  if (maxCvt === 0) maxCvt = 5000;
  else if (maxCvt < -1) maxCvt = 1;
  let iiifVersion = r.num('IIIF_VERSION', 3, { integer: true });
  if (iiifVersion !== 2 && iiifVersion !== 3) {
    r.warnings.push(`IIIF_VERSION: only 2 and 3 are served, received ${iiifVersion}; using 3`);
    iiifVersion = 3;
  }
  const config: Config = {
    filesystemPrefix: r.str('FILESYSTEM_PREFIX', ''),
    filesystemSuffix: r.str('FILESYSTEM_SUFFIX', ''),
    filenamePattern: r.str('FILENAME_PATTERN', '_pyr_'),
    maxImageCacheBytes: Math.floor(cacheMb * 1024000),
    maxMetadataCacheSize: r.num(metaName, 1000, { integer: true, min: -1 }),
    jpegQuality: r.num('JPEG_QUALITY', 75, { integer: true, min: 1, max: 100 }),
    pngQuality: r.num('PNG_QUALITY', 1, { integer: true, min: 0, max: 9 }),
    webpQuality: r.num('WEBP_QUALITY', 50, { integer: true, min: -1, max: 100 }),
    avifQuality: r.num('AVIF_QUALITY', 50, { integer: true, min: -1, max: 100 }),
    maxCvt,
    allowUpscaling: r.bool('ALLOW_UPSCALING', true),
    interpolation: r.num('INTERPOLATION', 1, { integer: true, min: 0, max: 3 }),
    codecPassthrough: r.bool('CODEC_PASSTHROUGH', true),
    cors: r.str('CORS', ''),
    baseUrl: r.str('BASE_URL', ''),
    cacheControl: r.str('CACHE_CONTROL', 'max-age=86400'),
    logfile: r.str('LOGFILE', path.join(os.tmpdir(), 'iipsrv.log')),
    verbosity: Math.max(0, r.num('VERBOSITY', 1, { integer: true })),
    uriMap: parseUriMap(env.URI_MAP, r.warnings),
    iiifVersion,
    copyright: r.str('COPYRIGHT', ''),
    memcachedServers: r.str('MEMCACHED_SERVERS', ''),
    memcachedTimeout: r.num('MEMCACHED_TIMEOUT', 86400, { integer: true, min: 0 }),
    decoderModules: r.str('DECODER_MODULES', ''),
    maxLayers: r.num('MAX_LAYERS', 0, { integer: true, min: -1 }),
    iipErrorStatus200: r.bool('IIP_ERROR_STATUS_200', false),
  };
  if (config.uriMap) r.settings.push(['URI_MAP', `${config.uriMap.prefix}=>${config.uriMap.protocol}`]);
  return { config, warnings: r.warnings, settings: r.settings };
}
