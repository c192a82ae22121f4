// JPIP request fields (ISO/IEC 15444-9 Annex C) from a query string or a form-encoded POST
// body: target, tid, channels (cnew, cid, cclose, qid), the view-window (fsiz, roff, rsiz, comps,
// layers, stream/context), response control (type, len, quality, metareq) and the cache model
// (model, need). Pure parsing: values are checked and typed, never acted on. Field names are
// case-sensitive as in the standard; unknown fields and scheduling hints are accepted and ignored.

import { ImageServerError } from '../../core/errors.js';

export type StreamType = 'jpp-stream' | 'jpt-stream';
export type Rounding = 'round-down' | 'round-up' | 'closest';

/** An inclusive range; `to` is Infinity for an open range such as `3-`. */
export interface Range {
  readonly from: number;
  readonly to: number;
  readonly step?: number;
}

export interface MetaRequest {
  /** Box types asked for (`*` = all). */
  readonly types: readonly string[];
  /** `!!`: metadata only, no image data. */
  readonly only: boolean;
}

export interface JpipRequest {
  readonly target?: string;
  readonly subtarget?: string;
  readonly tid?: string;
  /** Transports offered with cnew (`http`, `http-tcp`, ...). */
  readonly cnew?: readonly string[];
  readonly cid?: string;
  readonly cclose?: readonly string[];
  readonly qid?: string;
  /** The stream type chosen from the `type` preference list; undefined when absent. */
  readonly type?: StreamType;
  /** The `type` value as sent, when the chosen type differs from it (for JPIP-type). */
  readonly typeAsked?: string;
  readonly fsiz?: { readonly fx: number; readonly fy: number; readonly round: Rounding };
  readonly roff?: { readonly x: number; readonly y: number };
  readonly rsiz?: { readonly w: number; readonly h: number };
  readonly comps?: readonly Range[];
  readonly layers?: number;
  readonly len?: number;
  readonly quality?: number;
  readonly stream?: readonly Range[];
  readonly metareq?: MetaRequest;
  readonly model?: string;
  readonly need?: string;
  readonly wait?: string;
}

const bad = (field: string, expected: string, value: string): ImageServerError =>
  new ImageServerError('BAD_REQUEST', `Expected ${expected} for ${field} but received "${value}"`);

const UINT = /^\d{1,15}$/;

function uint(field: string, v: string): number {
  if (!UINT.test(v)) throw bad(field, 'a non-negative integer', v);
  return Number(v);
}

function pair(field: string, v: string, signed = false): [number, number] {
  const m = (signed ? /^(-?\d{1,15}),(-?\d{1,15})$/ : /^(\d{1,15}),(\d{1,15})$/).exec(v);
  if (!m) throw bad(field, signed ? 'two integers "x,y"' : 'two non-negative integers "x,y"', v);
  return [Number(m[1]), Number(m[2])];
}

/** `0,2-3,5-` style lists; `:step` allowed where `steps` is true (stream). */
export function parseRanges(field: string, v: string, steps = false): Range[] {
  const out: Range[] = [];
  for (const part of v.split(',')) {
    const m = (steps ? /^(\d{1,15})(?:-(\d{0,15}))?(?::(\d{1,15}))?$/ : /^(\d{1,15})(?:-(\d{0,15}))?$/).exec(part);
    if (!m) throw bad(field, steps ? 'ranges such as "0-9:2"' : 'ranges such as "0,2-3"', v);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : m[2] === '' ? Infinity : Number(m[2]);
    if (to < from) throw bad(field, 'ranges whose end is not below their start', v);
    const step = steps && m[3] !== undefined ? Number(m[3]) : undefined;
    if (step === 0) throw bad(field, 'a positive step', v);
    out.push(step ? { from, to, step } : { from, to });
  }
  return out;
}

/** Whether `n` lies in one of `ranges`. */
export function inRanges(ranges: readonly Range[], n: number): boolean {
  return ranges.some((r) => n >= r.from && n <= r.to && (r.step === undefined || (n - r.from) % r.step === 0));
}

/** `type=jpp-stream`, `image/jpt-stream`, `jpp-stream;ptype=ext`, preference lists. */
function parseType(v: string): StreamType | undefined {
  for (const item of v.split(',')) {
    const t = item
      .split(';')[0]
      .trim()
      .replace(/^image\//, '');
    if (t === 'jpp-stream' || t === 'jpt-stream') return t;
  }
  return undefined;
}

/**
 * `metareq=[<box-type>[:<limit>][/<flags>];...]<root>[!!],...`. Only the box types and `!!`
 * matter here: every request receives metadata bin 0; boxes kept in their own bins are sent
 * when their type (or `*`) is asked for.
 */
function parseMetareq(v: string): MetaRequest {
  const types: string[] = [];
  const re = /\[([^\]]*)\]/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(v))) {
    for (const item of m[1].split(';')) {
      const type = item.split(/[:/]/)[0];
      if (type !== '') types.push(type);
    }
  }
  return { types, only: v.includes('!!') };
}

/** Splits `a=1&b=2`; each value percent-decoded once (`+` is not a space in JPIP). */
export function fieldPairs(query: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const token of query.split('&')) {
    if (token === '') continue;
    const eq = token.indexOf('=');
    const name = eq < 0 ? token : token.slice(0, eq);
    const raw = eq < 0 ? '' : token.slice(eq + 1);
    let value: string;
    try {
      value = decodeURIComponent(raw);
    } catch {
      throw new ImageServerError('BAD_REQUEST', `Expected a percent-encoded value for ${name} but received "${raw}"`);
    }
    out.set(name, value);
  }
  return out;
}

export function parseJpipRequest(query: string): JpipRequest {
  const f = fieldPairs(query);
  const req: { -readonly [K in keyof JpipRequest]: JpipRequest[K] } = {};
  const get = (name: string): string | undefined => f.get(name);
  let v: string | undefined;
  if ((v = get('target')) !== undefined) {
    if (v === '') throw bad('target', 'a file name', v);
    req.target = v;
  }
  if ((v = get('subtarget')) !== undefined) req.subtarget = v;
  if ((v = get('tid')) !== undefined) req.tid = v;
  if ((v = get('cnew')) !== undefined) req.cnew = v.split(',').map((s) => s.trim());
  if ((v = get('cid')) !== undefined) {
    if (v === '') throw bad('cid', 'a channel id', v);
    req.cid = v;
  }
  if ((v = get('cclose')) !== undefined) req.cclose = v.split(',').filter((s) => s !== '');
  if ((v = get('qid')) !== undefined) req.qid = String(uint('qid', v));
  if ((v = get('type')) !== undefined) {
    const t = parseType(v);
    if (!t) throw new ImageServerError('NOT_IMPLEMENTED', `Only jpp-stream and jpt-stream are served; received type "${v}"`);
    req.type = t;
    if (v !== t) req.typeAsked = v;
  }
  if ((v = get('fsiz')) !== undefined) {
    const m = /^(\d{1,9}),(\d{1,9})(?:,(round-up|round-down|closest))?$/.exec(v);
    if (!m || Number(m[1]) === 0 || Number(m[2]) === 0)
      throw bad('fsiz', '"fx,fy" or "fx,fy,round-up|round-down|closest" with fx, fy ≥ 1', v);
    req.fsiz = { fx: Number(m[1]), fy: Number(m[2]), round: (m[3] as Rounding | undefined) ?? 'round-down' };
  }
  if ((v = get('roff')) !== undefined) {
    const [x, y] = pair('roff', v, true);
    req.roff = { x, y };
  }
  if ((v = get('rsiz')) !== undefined) {
    const [w, h] = pair('rsiz', v);
    req.rsiz = { w, h };
  }
  if ((v = get('comps')) !== undefined) req.comps = parseRanges('comps', v);
  if ((v = get('layers')) !== undefined) req.layers = uint('layers', v);
  if ((v = get('len')) !== undefined) req.len = uint('len', v);
  if ((v = get('quality')) !== undefined) {
    if (!/^(-1|\d{1,3})$/.test(v) || Number(v) > 100) throw bad('quality', 'an integer from -1 to 100', v);
    req.quality = Number(v);
  }
  // `stream` lists codestreams; `context=jpxl<ranges>` names JPX compositing layers, which in the
  // files served here map one-to-one onto codestreams.
  if ((v = get('stream')) !== undefined) req.stream = parseRanges('stream', v.replace(/<.*$/, ''), true);
  if ((v = get('context')) !== undefined && req.stream === undefined) {
    const m = /^jpxl<([^>]*)>/.exec(v);
    if (m) req.stream = parseRanges('context', m[1], true);
  }
  if ((v = get('metareq')) !== undefined) req.metareq = parseMetareq(v);
  if ((v = get('model')) !== undefined) req.model = v;
  if ((v = get('need')) !== undefined) req.need = v;
  if ((v = get('wait')) !== undefined) req.wait = v;
  return req;
}
