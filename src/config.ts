// Server configuration from the environment, with iipsrv's variable names, defaults and
// clamping, so existing Apache/nginx/lighttpd/systemd set-ups keep working unchanged.
// Policy for bad values: every invalid value is reported by name at start-up and the default
// (or the nearest allowed value, as iipsrv clamps) is used; the server does not exit.

import os from 'node:os';
import path from 'node:path';
import { parseMemcachedServers } from './cache/memcached.js';

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
  /** AVIF_CODEC: 0 auto, 1 aom, 2 rav1e, 3 svt (> 3 → 0). sharp's build has aom only. */
  readonly avifCodec: number;
  /**
   * TIFF_COMPRESSION for TIFF output: 0 none, 1 LZW, 2 Deflate, 3 JPEG, 4 WebP, 5 Zstandard
   * (written as Deflate: sharp's libtiff has no Zstandard encoder).
   */
  readonly tiffCompression: number;
  /**
   * TIFF_QUALITY (0–100; capped at 9 for Deflate, 19 for Zstandard, as iipsrv). Read and logged
   * for compatibility only: libvips fixes the Deflate/LZW effort, and JPEG/WebP-compressed TIFF
   * output takes QLT, else JPEG_QUALITY/WEBP_QUALITY (iipsrv's default of 1 would be unusable).
   */
  readonly tiffQuality: number;
  /** WATERMARK: path of the watermark image; empty = none. */
  readonly watermark: string;
  /** WATERMARK_PROBABILITY, 0–1. */
  readonly watermarkProbability: number;
  /** WATERMARK_OPACITY, 0–1. */
  readonly watermarkOpacity: number;
  /** Largest output side; -1 unlimited. */
  readonly maxCvt: number;
  /** MAX_ICC: embed the source ICC profile when smaller than this many bytes; 0 never, -1 always. */
  readonly maxIcc: number;
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
  /** IIIF_EXTENSIONS: the qualities negative, stretch, equalization and log. */
  readonly iiifExtensions: boolean;
  /** IIIF_DELIMITER: `<id><delimiter><n>` selects member n of a sequence; empty = off. */
  readonly iiifDelimiter: string;
  /** IIIF_EXTRA_INFO: JSON members added to every info.json (already parsed). */
  readonly iiifExtraInfo: Readonly<Record<string, unknown>>;
  readonly copyright: string;
  /**
   * MEMCACHED_SERVERS as given: `host[:port]` comma list. Empty (the default) = no Memcached
   * tier. iipsrv's default `localhost` only applies to its builds with libmemcached; here a
   * shared cache is something one asks for, so an install never probes a port it did not name.
   */
  readonly memcachedServers: string;
  /** Item expiry in seconds (MEMCACHED_TIMEOUT, as iipsrv). */
  readonly memcachedTimeout: number;
  /** Memcached's item size limit (its `-I`); larger responses are not stored there. */
  readonly memcachedMaxItemBytes: number;
  /** Hard deadline of one Memcached lookup; a hung server costs at most this per request. */
  readonly memcachedDeadlineMs: number;
  /** How long to stop asking a failing Memcached before trying again (doubles up to 30 s). */
  readonly memcachedRetrySeconds: number;
  readonly decoderModules: string;
  readonly maxLayers: number;
  /** Send IIP errors with status 200 as iipsrv does (IIP_ERROR_STATUS_200=1). */
  readonly iipErrorStatus200: boolean;
  /** JPIP_PREFIX: URL path prefix served as JPIP (`/jpip/<target>`); empty = query routing only. */
  readonly jpipPrefix: string;
  /** JPIP_CACHE: folder for persisted JPIP packet indexes; empty = keep them in memory only. */
  readonly jpipCache: string;
  /** JPIP_SESSION_TIMEOUT: seconds a JPIP session may stay idle. */
  readonly jpipSessionTimeout: number;
  /** JPIP_MAX_SESSIONS: open JPIP sessions; a new one beyond it gets 503. */
  readonly jpipMaxSessions: number;
  /** JPIP_MAX_MODEL_SIZE in MB: memory for all sessions' cache models (oldest dropped beyond). */
  readonly jpipMaxModelMb: number;
  /** JPIP_MAX_RESPONSE in MB: largest JPIP response body (EOR 7 "response limit" beyond). */
  readonly jpipMaxResponseMb: number;
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

/** Keeps the entries that parse; names the ones that do not. */
function memcachedServers(r: Reader, raw: string | undefined): string {
  const { servers, errors } = parseMemcachedServers(raw ?? '');
  for (const e of errors) r.warnings.push(`MEMCACHED_SERVERS: ${e}; that entry is ignored`);
  const list = servers.map((s) => (s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`)).join(',');
  r.settings.push(['MEMCACHED_SERVERS', list === '' ? '(none: no Memcached tier)' : list]);
  return list;
}

/** An integer code in 0…max; anything else is reported and becomes 0, as iipsrv does. */
function codeOrZero(r: Reader, name: string, def: number, max: number): number {
  const v = r.num(name, def, { integer: true });
  if (v >= 0 && v <= max) return v;
  r.warnings.push(`${name}: expected 0 to ${max} but received ${v}; using 0`);
  r.settings[r.settings.length - 1] = [name, '0'];
  return 0;
}

/**
 * IIIF_EXTRA_INFO: iipsrv pastes the text into info.json as it is (`"service": [...]`); here it
 * must parse as JSON object members, so that a typo is reported at start-up rather than
 * breaking every info.json.
 */
function extraInfo(r: Reader): Record<string, unknown> {
  const text = r.str('IIIF_EXTRA_INFO', '').trim().replace(/^,|,$/g, '');
  if (text === '') return {};
  try {
    const v: unknown = JSON.parse(text.startsWith('{') ? text : `{${text}}`);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  r.warnings.push('IIIF_EXTRA_INFO: expected JSON members such as "service": [ ... ]; ignored');
  return {};
}

export function loadConfig(env: Env = process.env): ConfigResult {
  const r = new Reader(env);
  // TIFF output: iipsrv rejects 5 (Zstandard) although its README documents it; we accept it.
  const tiffCompression = codeOrZero(r, 'TIFF_COMPRESSION', 2, 5);
  const tiffQualityCap = tiffCompression === 2 ? 9 : tiffCompression === 5 ? 19 : 100;
  const cacheMb = r.num('MAX_IMAGE_CACHE_SIZE', 10, { min: 0 });
  // iipsrv reads MAX_METADATA_CACHE_SIZE but documents MAX_IMAGE_METADATA_CACHE_SIZE: accept
  // both, the documented name winning when both are set.
  const metaName = env.MAX_IMAGE_METADATA_CACHE_SIZE !== undefined ? 'MAX_IMAGE_METADATA_CACHE_SIZE' : 'MAX_METADATA_CACHE_SIZE';
  let maxCvt = r.num('MAX_CVT', 5000, { integer: true });
  if (maxCvt === 0) maxCvt = 5000;
  else if (maxCvt < -1) maxCvt = 1;
  // iipsrv's code says 65536, its README 65535: the documented value (§13 #20).
  const maxIcc = r.num('MAX_ICC', 65535, { integer: true, min: -1 });
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
    avifCodec: codeOrZero(r, 'AVIF_CODEC', 0, 3),
    tiffCompression,
    tiffQuality: Math.min(r.num('TIFF_QUALITY', 1, { integer: true, min: 0, max: 100 }), tiffQualityCap),
    watermark: r.str('WATERMARK', ''),
    watermarkProbability: r.num('WATERMARK_PROBABILITY', 1, { min: 0, max: 1 }),
    watermarkOpacity: r.num('WATERMARK_OPACITY', 1, { min: 0, max: 1 }),
    maxCvt,
    maxIcc,
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
    iiifExtensions: r.bool('IIIF_EXTENSIONS', false),
    iiifDelimiter: r.str('IIIF_DELIMITER', ''),
    iiifExtraInfo: extraInfo(r),
    copyright: r.str('COPYRIGHT', ''),
    memcachedServers: memcachedServers(r, env.MEMCACHED_SERVERS),
    memcachedTimeout: r.num('MEMCACHED_TIMEOUT', 86400, { integer: true, min: 0 }),
    memcachedMaxItemBytes: r.num('MEMCACHED_MAX_ITEM_SIZE', 1048576, { integer: true, min: 1024 }),
    memcachedDeadlineMs: r.num('MEMCACHED_DEADLINE_MS', 40, { integer: true, min: 1, max: 10000 }),
    memcachedRetrySeconds: r.num('MEMCACHED_RETRY_SECONDS', 5, { min: 0.1, max: 300 }),
    decoderModules: r.str('DECODER_MODULES', ''),
    maxLayers: r.num('MAX_LAYERS', 0, { integer: true, min: -1 }),
    iipErrorStatus200: r.bool('IIP_ERROR_STATUS_200', false),
    jpipPrefix: r.str('JPIP_PREFIX', 'jpip').replace(/^\/+|\/+$/g, ''),
    jpipCache: r.str('JPIP_CACHE', path.join(os.tmpdir(), 'iipsrv-jpip')),
    jpipSessionTimeout: r.num('JPIP_SESSION_TIMEOUT', 300, { min: 1 }),
    jpipMaxSessions: r.num('JPIP_MAX_SESSIONS', 1000, { integer: true, min: 1 }),
    jpipMaxModelMb: r.num('JPIP_MAX_MODEL_SIZE', 64, { min: 1 }),
    jpipMaxResponseMb: r.num('JPIP_MAX_RESPONSE', 32, { min: 0.01 }),
  };
  if (config.uriMap) r.settings.push(['URI_MAP', `${config.uriMap.prefix}=>${config.uriMap.protocol}`]);
  return { config, warnings: r.warnings, settings: r.settings };
}
