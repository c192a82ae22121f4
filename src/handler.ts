// The one request handler behind every front end. It routes a request to its protocol,
// opens the image safely, answers conditional requests, renders through the cache, and is
// the only place where errors become responses (status from the error code registry, body
// in the protocol's own form, never a path or a stack trace).
//
// Routing: a query string (or a POST body) is a list of IIP commands (iip-commands.ts). Its
// one output command decides who answers: IIIF=, Zoomify= and DeepZoom= go to their modules
// with the other IIP setters (processing, QLT, LYR, COL, SDS) applied to their views; every
// other request is IIP's, including unknown commands (IIP error `2 2`).

import { createHash } from 'node:crypto';
import path from 'node:path';
import { ImageServerError, toServerError } from './core/errors.js';
import { cvtLimits } from './core/geometry.js';
import type { Config } from './config.js';
import type { ServerRequest, ServerResponse } from './handler-types.js';
import { LOG, type Logger } from './log.js';
import { protocolByName } from './protocols/index.js';
import { iip, withIipSetters } from './protocols/iip.js';
import { decodeValue, delegatedName, parseIipCommands, type IipCommands } from './protocols/iip-commands.js';
import {
  plainTextError,
  type FormattedBody,
  type Protocol,
  type ProtocolAnswer,
  type ProtocolInput,
  type ProtocolOptions,
  type RawSamples,
  type ViewSamples,
} from './protocols/protocol.js';
import { cacheKey } from './cache/key.js';
import type { CacheStore } from './cache/store.js';
import type { ImageRegistry, ImageSource } from './image/registry.js';
import { planView, type PlanOptions, type RenderPlan } from './image/plan.js';
import { passthroughAllowed, render, renderSettings, settingsKey } from './image/render.js';
import { DEFAULT_MEMBER, resolveImage, type SequenceRules } from './image/sequence.js';
import { JpipService } from './protocols/jpip/service.js';
import type { IndexStore } from './jpeg2000/index-store.js';

export const SERVER_NAME = 'iipsrv-ts/0.1.0';

export interface HandlerDeps {
  readonly config: Config;
  readonly logger: Logger;
  readonly images: ImageRegistry;
  readonly cache: CacheStore;
  /** Output formats the encoder can produce. */
  readonly formats: readonly string[];
  /** JPEG 2000 packet indexes, shared by JPIP and the decoder (JPIP makes its own otherwise). */
  readonly indexes?: IndexStore;
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
/** Tiles of one TIL response rendered at the same time. */
const TILES_IN_FLIGHT = 4;
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
  /** The whole request string (query, or POST body); for IIP's commands. */
  readonly request: string;
  /** IIP setters around a delegated IIIF=/Zoomify=/DeepZoom= command, applied to its answer. */
  readonly setters?: IipCommands;
  /** The parsed commands of an IIP request, handed to the protocol so it does not parse again. */
  readonly commands?: IipCommands;
  /** What the IIP commands ignored (later output commands, unusable values), for the log. */
  readonly notes?: readonly string[];
}

/**
 * Which protocol answers a request. URI_MAP paths go to the mapped protocol (IIP takes the
 * path as FIF and the query string as further commands). A query string — or the POST body
 * when the query is empty — goes to IIIF, Zoomify or DeepZoom when that is its output command
 * (iip-commands.ts, order rule), else to IIP. Null for an empty request (the home page).
 */
export function routeRequest(req: ServerRequest, config: Config, formats: readonly string[] = []): Route | null {
  const uriPath = req.requestUri.split('?')[0];
  const map = config.uriMap;
  if (map) {
    const base = map.prefix === '' ? '/' : `/${map.prefix}/`;
    if (uriPath.startsWith(base) || (map.prefix !== '' && uriPath === `/${map.prefix}`)) {
      const argument = uriPath.slice(base.length);
      if (map.protocol === 'IIP') {
        const commands = parseIipCommands(req.query, { formats, image: decodeValue(argument, false) });
        const delegated = delegation(commands);
        if (delegated) return { ...delegated, request: req.query };
        return { protocol: iip, name: 'FIF', argument, via: 'path', request: req.query, commands, notes: commands.notes };
      }
      return { protocol: protocolByName(map.protocol), name: map.protocol, argument, via: 'path', request: '' };
    }
  }
  let query = req.query;
  if (query === '' && req.method === 'POST' && req.body.length > 0) query = req.body.toString('latin1').trim();
  if (query === '') return null;
  const commands = parseIipCommands(query, { formats });
  const delegated = delegation(commands);
  if (delegated) return { ...delegated, request: query };
  return { protocol: iip, name: 'IIP', argument: query, via: 'query', request: query, commands, notes: commands.notes };
}

/** The IIIF/Zoomify/DeepZoom route when that is the request's output command. */
function delegation(commands: IipCommands): Omit<Route, 'request'> | null {
  const out = commands.output;
  const name = out && delegatedName(out.command);
  if (!out || !name || !('argument' in out)) return null;
  // Unsupported commands around a delegated one (cache busters such as `&_=123`) do not stop it.
  const notes = [...commands.notes, ...commands.errors.map((e) => `${e.argument} ignored: not an IIP command`)];
  return { protocol: protocolByName(name), name, argument: out.argument, via: 'query', setters: commands, notes };
}

/** A response with the protocol that answered it, for the counters. */
export type HandledResponse = ServerResponse & { readonly protocol?: string };

export function createHandler(deps: HandlerDeps): ((req: ServerRequest) => Promise<HandledResponse>) & { stats: HandlerStats } {
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
    iiifExtensions: config.iiifExtensions,
    iiifDelimiter: config.iiifDelimiter,
    iiifExtraInfo: config.iiifExtraInfo,
    cors: config.cors !== '',
    iipErrorStatus200: config.iipErrorStatus200,
  };
  // Encoders, TIFF output, interpolation and the watermark (which also rules out passthrough).
  const encoder = renderSettings(config);
  const planOptions: PlanOptions = {
    limits: cvtLimits(config.maxCvt, config.allowUpscaling),
    codecPassthrough: config.codecPassthrough && passthroughAllowed(encoder),
  };
  const encoderKey = settingsKey(encoder);
  const sequenceRules: SequenceRules = {
    prefix: config.filesystemPrefix,
    suffix: config.filesystemSuffix,
    pattern: config.filenamePattern,
  };
  const corsHeaders: Headers = config.cors
    ? [
        ['Access-Control-Allow-Origin', config.cors],
        ['Access-Control-Allow-Methods', 'GET, POST, OPTIONS'],
        ['Access-Control-Allow-Headers', 'Accept, Content-Type, X-Requested-With, If-Modified-Since'],
        ['Access-Control-Max-Age', '86400'],
      ]
    : [];

  // JPIP (target=/cid=/cnew= requests, or paths under JPIP_PREFIX): sessions and packet indexes.
  const jpip = new JpipService(config, logger, undefined, deps.indexes);

  function respond(status: number, headers: Headers, body: Buffer, head: boolean): ServerResponse {
    const all: Headers = [['Server', SERVER_NAME], ['X-Powered-By', 'IIPImage'], ...headers];
    all.push(['Content-Length', String(body.length)]);
    return { status, headers: all, body: head ? Buffer.alloc(0) : body };
  }

  function errorResponse(err: ImageServerError, route: Route | null, input: ProtocolInput | undefined, head: boolean): ServerResponse {
    const formatted = route?.protocol ? route.protocol.formatError(err, input) : plainTextError(err);
    const headers: Headers = [
      ['Content-Type', formatted.contentType],
      ['Cache-Control', 'no-cache'],
      ...headersOf(formatted),
      ...corsHeaders,
    ];
    if (err.status === 405) headers.push(['Allow', ALLOW]);
    return respond(formatted.status ?? err.status, headers, Buffer.from(formatted.body), head);
  }

  /**
   * Last-Modified, Cache-Control and a strong ETag (file identity plus what was asked: `variant`,
   * hashed here unless `tag` already is a hash) for one answer, and the 304 to send instead when
   * the client already has it (with the protocol's own headers, `extra`, as the 200 would).
   */
  function conditional(
    req: ServerRequest,
    src: ImageSource,
    variant: { text: string } | { tag: string },
    extra: Headers = [],
  ): { common: Headers; cached?: ServerResponse } {
    // Image tags are cache keys (which name the stack page); texts get the page added here.
    const text = 'text' in variant ? `${variant.text}\0${src.file.page ?? 0}` : '';
    const h = 'tag' in variant ? variant.tag : createHash('sha1').update(text).digest('base64url').slice(0, 12);
    const etag = `"${src.file.size.toString(36)}-${Math.floor(src.file.mtimeMs).toString(36)}-${h}"`;
    const common: Headers = [
      ['Last-Modified', new Date(src.file.mtimeMs).toUTCString()],
      ['Cache-Control', config.cacheControl],
      ['ETag', etag],
    ];
    if (!notModified(req, src, etag)) return { common };
    return { common, cached: respond(304, answerHeaders(undefined, common, extra), Buffer.alloc(0), true) };
  }

  /** A formatted body's own headers, as a mutable list. */
  function headersOf(x: { headers?: ReadonlyArray<readonly [string, string]> }): Headers {
    return (x.headers ?? []).map(([k, v]) => [k, v] as [string, string]);
  }

  /**
   * An answer's headers: Content-Type, the common ones, CORS, then the protocol's own, whose
   * Cache-Control (e.g. `private` for a negotiated IIIF version) replaces the configured one.
   */
  function answerHeaders(contentType: string | undefined, common: Headers, extra: Headers): Headers {
    const isCc = ([k]: readonly [string, string]): boolean => k.toLowerCase() === 'cache-control';
    const own = extra.some(isCc);
    return [
      ...(contentType === undefined ? [] : ([['Content-Type', contentType]] as Headers)),
      ...(own ? common.filter((h) => !isCc(h)) : common),
      ...corsHeaders,
      ...extra,
    ];
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
    let answer: ProtocolAnswer = protocol.parse(input);
    if (route.setters) answer = withIipSetters(answer, route.setters);
    if (answer.kind === 'redirect') {
      return respond(303, [['Location', answer.location], ...corsHeaders], Buffer.alloc(0), head);
    }
    if (answer.kind === 'fixed') {
      // No image: no Last-Modified (iipsrv's empty one ended the headers early, §13 #10).
      const headers = answerHeaders(answer.body.contentType, [['Cache-Control', config.cacheControl]], headersOf(answer.body));
      return respond(200, headers, Buffer.from(answer.body.body), head);
    }
    // A file, or the requested member (IIP SDS) of a FILENAME_PATTERN sequence (§11.5).
    const { file, views } = await resolveImage(answer.identifier, answer.member, sequenceRules);
    const opened = await images.get(file, views);
    // In a plain file the member (IIP SDS, IIIF_DELIMITER) names a page of an image stack; the
    // decoder answers 404 past the last one.
    const page = views ? 0 : (answer.member?.horizontal ?? 0);
    const src = opened.info.stack && page !== 0 ? await images.get({ ...file, page }) : opened;

    if (answer.kind === 'samples') {
      const { level, rect } = answer.region(src.info);
      const { common, cached } = conditional(req, src, { text: answer.variant });
      if (cached) return cached;
      const options = answer.layers !== undefined ? { layers: answer.layers } : undefined;
      const read = async (s: ImageSource): Promise<RawSamples> => s.decoder.readRegion(level, rect, options);
      let samples: ViewSamples[];
      if (answer.everyView && views) {
        // Each view is its own file; the validators stay those of the member asked for.
        const vertical = answer.member?.vertical ?? DEFAULT_MEMBER.vertical;
        samples = await Promise.all(
          views.horizontal.map(async (horizontal) => {
            const r = await resolveImage(answer.identifier, { horizontal, vertical }, sequenceRules);
            return { horizontal, samples: await read(await images.get(r.file, r.views)) };
          }),
        );
      } else if (answer.everyView && src.info.stack) {
        // Every page of a stack, named as the file names them.
        samples = await Promise.all(
          src.info.stack.map(async ({ name }, p) => ({
            horizontal: p,
            ...(name !== undefined ? { name } : {}),
            samples: await read(p === page ? src : await images.get({ ...file, page: p })),
          })),
        );
      } else {
        samples = [{ horizontal: answer.member?.horizontal ?? DEFAULT_MEMBER.horizontal, samples: await read(src) }];
      }
      const formatted = answer.format(samples, src.info);
      return respond(200, answerHeaders(formatted.contentType, common, headersOf(formatted)), Buffer.from(formatted.body), head);
    }

    if (answer.kind === 'tiles') {
      const plans = answer.views(src.info).map((v) => planView(src.info, v, planOptions));
      const { common, cached } = conditional(req, src, { text: plans.map((p) => p.key).join('|') });
      if (cached) return cached;
      // Each tile goes through the same cache and passthrough as a single tile; a few at a time
      // so that one large TIL neither serialises nor floods sharp's thread pool.
      const bodies: Buffer[] = new Array<Buffer>(plans.length);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < plans.length) {
          const i = next++;
          bodies[i] = (await renderCached(src, plans[i])).entry.body;
        }
      };
      await Promise.all(Array.from({ length: Math.min(TILES_IN_FLIGHT, plans.length) }, worker));
      const out = answer.combine(bodies, src.info);
      return { ...respond(200, answerHeaders(out.contentType, common, headersOf(out)), out.body, head), note: `${plans.length} tiles` };
    }

    if (answer.kind === 'info') {
      const memoKey = `${src.file.path}\0${src.file.size}\0${src.file.mtimeMs}\0${src.file.page ?? 0}\0${answer.variant}`;
      let body = infoMemo.get(memoKey);
      if (!body) {
        const formatted = answer.format(src.info);
        body = { ...formatted, bytes: Buffer.from(formatted.body) };
        if (infoMemo.size >= INFO_MEMO_MAX) infoMemo.clear();
        infoMemo.set(memoKey, body);
      }
      const extra = headersOf(body);
      const { common, cached } = conditional(req, src, { text: answer.variant }, extra);
      if (cached) return cached;
      return respond(200, answerHeaders(body.contentType, common, extra), body.bytes, head);
    }

    const view = answer.view(src.info);
    const plan = planView(src.info, view, planOptions);
    const extra = headersOf({ headers: answer.headers?.(src.info, view) });
    // The cache key names the encoded bytes (plan and encoder settings): the ETag is its hash.
    const key = cacheKey(src.file, `${plan.key}|${encoderKey}`);
    const { common, cached } = conditional(req, src, { tag: key.slice(-12) }, extra);
    if (cached) return cached;

    const { entry, note } = await renderCached(src, plan, key);
    const headers = answerHeaders(entry.contentType, common, extra);
    if (!plan.tile && !answer.isTile) {
      const stem = path.basename(src.file.path).replace(/\.[^.]*$/, '');
      const disposition = req.method === 'POST' ? 'attachment' : 'inline';
      headers.push(['Content-Disposition', `${disposition}; filename="${stem}_${plan.width}x${plan.height}.${plan.format}"`]);
    }
    return { ...respond(200, headers, entry.body, head), note };
  }

  /** The encoded output of a plan, from the cache or rendered (and then cached). */
  async function renderCached(
    src: ImageSource,
    plan: RenderPlan,
    key = cacheKey(src.file, `${plan.key}|${encoderKey}`),
  ): Promise<{ entry: { contentType: string; body: Buffer }; note: string }> {
    const hit = await cache.get(key);
    if (hit) {
      stats.cacheHits++;
      return { entry: hit, note: 'hit' };
    }
    const out = await render(src.decoder, plan, encoder);
    const entry = { contentType: out.contentType, body: out.body };
    if (out.passthrough) stats.passthrough++;
    else stats.renders++;
    await cache.set(key, entry);
    return { entry, note: out.passthrough ? 'passthrough' : 'render' };
  }

  const handler = async (req: ServerRequest): Promise<HandledResponse> => {
    const started = process.hrtime.bigint();
    stats.requests++;
    const head = req.method === 'HEAD';
    let route: Route | null = null;
    let input: ProtocolInput | undefined;
    let res: ServerResponse & { note?: string };
    let isJpip = false;
    try {
      if (req.method === 'OPTIONS') {
        res = respond(204, [['Allow', ALLOW], ['Cache-Control', config.cacheControl], ...corsHeaders], Buffer.alloc(0), true);
      } else if (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'POST') {
        throw new ImageServerError('METHOD_NOT_ALLOWED', `Method ${req.method} is not allowed`);
      } else if ((isJpip = jpip.matches(req))) {
        // JPIP takes its own road after the handler: data-bins from the packet index, not pixels.
        const out = await jpip.handle(req, head);
        res = { ...respond(out.status, [...out.headers, ...corsHeaders], out.body, head), note: out.note };
      } else {
        route = routeRequest(req, config, deps.formats);
        if (route?.notes?.length && logger.verbosity >= LOG.DETAIL) {
          for (const n of route.notes) logger.log(LOG.DETAIL, `${req.requestUri}: ${n}`);
        }
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
            request: route.request,
            commands: route.commands,
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
    const protocol = isJpip ? 'JPIP' : route ? (route.protocol?.name ?? 'unknown') : 'none';
    return { ...res, protocol };
  };
  return Object.assign(handler, { stats });
}
