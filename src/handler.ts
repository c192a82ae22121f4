// The one request handler behind every front end. It routes a request to its protocol,
// opens the image safely, answers conditional requests, renders through the cache, and is
// the only place where errors become responses (status from the error code registry, body
// in the protocol's own form, never a path or a stack trace).

import { createHash } from 'node:crypto';
import path from 'node:path';
import { ImageServerError, toServerError } from './core/errors.js';
import type { Config } from './config.js';
import type { RequestHandler, ServerRequest, ServerResponse } from './handler-types.js';
import { LOG, type Logger } from './log.js';
import { protocolByName } from './protocols/index.js';
import type { FormattedBody, Protocol, ProtocolInput, ProtocolOptions } from './protocols/protocol.js';
import { cacheKey } from './cache/key.js';
import type { CacheStore } from './cache/store.js';
import type { ImageRegistry, ImageSource } from './image/registry.js';
import { planView, type PlanOptions } from './image/plan.js';
import { render, type EncoderSettings } from './image/render.js';
import { resolveWithFallback } from './image/resolve.js';

export const SERVER_NAME = 'iipsrv-ts/0.1.0';

export interface HandlerDeps {
  readonly config: Config;
  readonly logger: Logger;
  readonly images: ImageRegistry;
  readonly cache: CacheStore;
  /** Output formats the encoder can produce. */
  readonly formats: readonly string[];
}

export interface HandlerStats {
  requests: number;
  cacheHits: number;
  passthrough: number;
  renders: number;
  errors: number;
}

type Headers = Array<[string, string]>;

const ALLOW = 'GET, HEAD, POST, OPTIONS';
const INFO_MEMO_MAX = 1000;

const HOME_PAGE = `<!DOCTYPE html>
<html><head><title>IIPImage server</title></head>
<body><h1>IIPImage server</h1><p>This is an image server speaking IIIF, IIP, Zoomify and DeepZoom.</p></body></html>
`;

interface Route {
  readonly protocol: Protocol | undefined;
  readonly name: string;
  readonly argument: string;
  readonly via: 'query' | 'path';
}

/** Splits `a=1&b=2` at each `&` and each token at its first `=`, as iipsrv does. */
function queryPairs(query: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const token of query.split('&')) {
    if (token === '') continue;
    const eq = token.indexOf('=');
    out.push(eq < 0 ? [token, token] : [token.slice(0, eq), token.slice(eq + 1)]);
  }
  return out;
}

export function routeRequest(req: ServerRequest, config: Config): Route | null {
  const uriPath = req.requestUri.split('?')[0];
  const map = config.uriMap;
  if (map) {
    const base = map.prefix === '' ? '/' : `/${map.prefix}/`;
    if (uriPath.startsWith(base) || (map.prefix !== '' && uriPath === `/${map.prefix}`)) {
      const argument = uriPath.slice(base.length);
      const name = map.protocol === 'IIP' ? 'FIF' : map.protocol;
      return { protocol: protocolByName(map.protocol), name, argument, via: 'path' };
    }
  }
  let query = req.query;
  if (query === '' && req.method === 'POST' && req.body.length > 0) query = req.body.toString('latin1').trim();
  if (query === '') return null;
  for (const [name, value] of queryPairs(query)) {
    const protocol = protocolByName(name);
    if (protocol) return { protocol, name, argument: value, via: 'query' };
  }
  const first = queryPairs(query)[0]?.[0] ?? query;
  return { protocol: undefined, name: first, argument: query, via: 'query' };
}

export function createHandler(deps: HandlerDeps): RequestHandler & { stats: HandlerStats } {
  const { config, logger, images, cache } = deps;
  const stats: HandlerStats = { requests: 0, cacheHits: 0, passthrough: 0, renders: 0, errors: 0 };
  // Formatted metadata bodies by file identity and variant (version, id): viewers ask for
  // info.json often and its JSON never changes while the file does not.
  const infoMemo = new Map<string, FormattedBody & { bytes: Buffer }>();

  const protocolOptions: ProtocolOptions = {
    maxCvt: config.maxCvt,
    allowUpscaling: config.allowUpscaling,
    baseUrl: config.baseUrl,
    iiifVersion: config.iiifVersion,
    formats: deps.formats,
    copyright: config.copyright,
  };
  const limit = config.maxCvt > 0 ? config.maxCvt : -1;
  const planOptions: PlanOptions = {
    limits: { maxWidth: limit, maxHeight: limit, maxArea: limit > 0 ? limit * limit : 0, allowUpscaling: config.allowUpscaling },
    codecPassthrough: config.codecPassthrough,
  };
  const encoder: EncoderSettings = {
    jpegQuality: config.jpegQuality,
    pngQuality: config.pngQuality,
    webpQuality: config.webpQuality,
    avifQuality: config.avifQuality,
    interpolation: config.interpolation,
  };
  const encoderKey = `q${encoder.jpegQuality},${encoder.pngQuality},${encoder.webpQuality},${encoder.avifQuality},i${encoder.interpolation}`;
  const corsHeaders: Headers = config.cors
    ? [
        ['Access-Control-Allow-Origin', config.cors],
        ['Access-Control-Allow-Methods', 'GET, POST, OPTIONS'],
        ['Access-Control-Allow-Headers', 'Accept, Content-Type, X-Requested-With, If-Modified-Since'],
        ['Access-Control-Max-Age', '86400'],
      ]
    : [];

  function respond(status: number, headers: Headers, body: Buffer, head: boolean): ServerResponse {
    const all: Headers = [['Server', SERVER_NAME], ['X-Powered-By', 'IIPImage'], ...headers];
    all.push(['Content-Length', String(body.length)]);
    return { status, headers: all, body: head ? Buffer.alloc(0) : body };
  }

  function errorResponse(err: ImageServerError, route: Route | null, input: ProtocolInput | undefined, head: boolean): ServerResponse {
    let formatted: FormattedBody = { contentType: 'text/plain; charset=utf-8', body: err.message };
    if (route?.protocol) formatted = route.protocol.formatError(err, input);
    const headers: Headers = [
      ['Content-Type', formatted.contentType],
      ['Cache-Control', 'no-cache'],
      ...(formatted.headers ?? []).map(([k, v]) => [k, v] as [string, string]),
      ...corsHeaders,
    ];
    if (err.status === 405) headers.push(['Allow', ALLOW]);
    return respond(err.status, headers, Buffer.from(formatted.body), head);
  }

  function validators(src: ImageSource, variant: string): { lastModified: string; etag: string } {
    const h = createHash('sha1').update(variant).digest('base64url').slice(0, 12);
    return {
      lastModified: new Date(src.file.mtimeMs).toUTCString(),
      etag: `"${src.file.size.toString(36)}-${Math.floor(src.file.mtimeMs).toString(36)}-${h}"`,
    };
  }

  /** RFC 9110: If-None-Match wins; otherwise 304 when the file is not newer than the date. */
  function notModified(req: ServerRequest, src: ImageSource, etag: string): boolean {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const inm = req.headers['if-none-match'];
    if (inm !== undefined) return inm.split(',').some((t) => t.trim() === etag || t.trim() === '*' || t.trim() === `W/${etag}`);
    const ims = req.headers['if-modified-since'];
    if (!ims) return false;
    const since = Date.parse(ims);
    return Number.isFinite(since) && Math.floor(src.file.mtimeMs / 1000) * 1000 <= since;
  }

  async function serve(req: ServerRequest, route: Route, input: ProtocolInput, head: boolean): Promise<ServerResponse & { note?: string }> {
    const protocol = route.protocol;
    if (!protocol) throw new ImageServerError('BAD_REQUEST', `Unsupported request: ${route.name}`);
    const answer = protocol.parse(input);
    if (answer.kind === 'redirect') {
      return respond(303, [['Location', answer.location], ...corsHeaders], Buffer.alloc(0), head);
    }
    const file = await resolveWithFallback(answer.identifier, { prefix: config.filesystemPrefix, suffix: config.filesystemSuffix });
    const src = await images.get(file);

    if (answer.kind === 'info') {
      const { lastModified, etag } = validators(src, answer.variant);
      const common: Headers = [
        ['Last-Modified', lastModified],
        ['Cache-Control', config.cacheControl],
        ['ETag', etag],
      ];
      if (notModified(req, src, etag)) return respond(304, [...common, ...corsHeaders], Buffer.alloc(0), true);
      const memoKey = `${src.file.path}\0${src.file.size}\0${src.file.mtimeMs}\0${answer.variant}`;
      let body = infoMemo.get(memoKey);
      if (!body) {
        const formatted = answer.format(src.info);
        body = { ...formatted, bytes: Buffer.from(formatted.body) };
        if (infoMemo.size >= INFO_MEMO_MAX) infoMemo.clear();
        infoMemo.set(memoKey, body);
      }
      const extra = (body.headers ?? []).map(([k, v]) => [k, v] as [string, string]);
      const headers: Headers = [['Content-Type', body.contentType], ...common, ...corsHeaders, ...extra];
      overrideCacheControl(headers);
      return respond(200, headers, body.bytes, head);
    }

    const view = answer.view(src.info);
    const plan = planView(src.info, view, planOptions);
    const { lastModified, etag } = validators(src, plan.key);
    const extra = (answer.headers?.(src.info, view) ?? []).map(([k, v]) => [k, v] as [string, string]);
    const common: Headers = [
      ['Last-Modified', lastModified],
      ['Cache-Control', config.cacheControl],
      ['ETag', etag],
    ];
    if (notModified(req, src, etag)) {
      const h = [...common, ...corsHeaders];
      overrideCacheControl(h, extra);
      return respond(304, h, Buffer.alloc(0), true);
    }

    const key = cacheKey(src.file, `${plan.key}|${encoderKey}`);
    let note = 'hit';
    let entry = await cache.get(key);
    if (entry) {
      stats.cacheHits++;
    } else {
      const out = await render(src.decoder, plan, encoder);
      entry = { contentType: out.contentType, body: out.body };
      if (out.passthrough) stats.passthrough++;
      else stats.renders++;
      note = out.passthrough ? 'passthrough' : 'render';
      await cache.set(key, entry);
    }
    const headers: Headers = [['Content-Type', entry.contentType], ...common, ...corsHeaders, ...extra];
    if (!plan.tile) {
      const stem = path.basename(src.file.path).replace(/\.[^.]*$/, '');
      const disposition = req.method === 'POST' ? 'attachment' : 'inline';
      headers.push(['Content-Disposition', `${disposition}; filename="${stem}_${plan.width}x${plan.height}.${plan.format}"`]);
    }
    overrideCacheControl(headers);
    return { ...respond(200, headers, entry.body, head), note };
  }

  /** A protocol's own Cache-Control (e.g. `private` for a negotiated IIIF version) wins. */
  function overrideCacheControl(headers: Headers, extra: Headers = headers): void {
    const own = extra.filter(([k]) => k.toLowerCase() === 'cache-control');
    if (own.length === 0 || (extra === headers && own.length === 1)) return;
    const value = own[own.length - 1][1];
    for (let i = headers.length - 1; i >= 0; i--) if (headers[i][0].toLowerCase() === 'cache-control') headers.splice(i, 1);
    headers.push(['Cache-Control', value]);
  }

  const handler = async (req: ServerRequest): Promise<ServerResponse> => {
    const started = process.hrtime.bigint();
    stats.requests++;
    const head = req.method === 'HEAD';
    let route: Route | null = null;
    let input: ProtocolInput | undefined;
    let res: ServerResponse & { note?: string };
    try {
      if (req.method === 'OPTIONS') {
        res = respond(204, [['Allow', ALLOW], ['Cache-Control', config.cacheControl], ...corsHeaders], Buffer.alloc(0), true);
      } else if (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'POST') {
        throw new ImageServerError('METHOD_NOT_ALLOWED', `Method ${req.method} is not allowed`);
      } else {
        route = routeRequest(req, config);
        if (!route) {
          res = respond(
            200,
            [
              ['Content-Type', 'text/html; charset=utf-8'],
              ['Cache-Control', 'no-cache'],
            ],
            Buffer.from(HOME_PAGE),
            head,
          );
        } else {
          input = {
            argument: route.argument,
            via: route.via,
            headers: req.headers,
            https: req.https,
            requestUri: req.requestUri,
            options: protocolOptions,
          };
          res = await serve(req, route, input, head);
        }
      }
    } catch (thrown) {
      const err = toServerError(thrown);
      stats.errors++;
      if (err.status >= 500) logger.log(LOG.ERROR, `error ${err.code} for ${req.requestUri}: ${err.detail ?? err.message}`);
      else if (err.detail) logger.log(LOG.DETAIL, `${err.code} for ${req.requestUri}: ${err.detail}`);
      res = errorResponse(err, route, input, head);
    }
    if (logger.verbosity >= LOG.REQUEST) {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const length = res.headers.find(([k]) => k === 'Content-Length')?.[1] ?? '0';
      logger.log(
        LOG.REQUEST,
        `${req.method} ${req.requestUri} ${res.status} ${length}B ${ms.toFixed(2)}ms${res.note ? ` ${res.note}` : ''}`,
      );
    }
    return res;
  };
  return Object.assign(handler, { stats });
}
