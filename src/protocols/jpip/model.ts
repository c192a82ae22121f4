// The server's model of a client cache (ISO/IEC 15444-9 C.9, 8.4 of the reference): for each
// codestream and data-bin, how many bytes from the start of the bin the client holds. A session
// keeps one for all its channels; a stateless request builds one from `model=`. Also parses the
// `model`/`need` grammar: explicit bins (Hm, H<t>, P<I>, T<t>, M<I>, `*` ids), implicit precinct
// sets (t/c/r/p ranges), `:<bytes>` and `:L<layers>` qualifiers, `-` subtraction and
// `[codestream ranges]` qualifiers. Applying items needs the packet index: see ./service.ts.

import { ImageServerError } from '../../core/errors.js';
import type { BinClass } from './messages.js';
import { parseRanges, type Range } from './fields.js';

/** "The client holds the whole bin", whatever its length. */
export const WHOLE = Number.MAX_SAFE_INTEGER;

/** Approximate heap cost of one model entry (Map slot, boxed numbers); bounds session memory. */
export const ENTRY_BYTES = 48;

export class CacheModel {
  private readonly streams = new Map<number, Map<number, number>>();
  private count = 0;

  private key(cls: number, id: number): number {
    return id * 16 + cls;
  }

  /** Bytes of the bin the client holds from its start (0 when none). */
  held(csn: number, cls: BinClass, id: number): number {
    return this.streams.get(csn)?.get(this.key(cls, id)) ?? 0;
  }

  /** Records that the client holds at least `bytes` of the bin. */
  add(csn: number, cls: BinClass, id: number, bytes: number): void {
    let m = this.streams.get(csn);
    if (!m) this.streams.set(csn, (m = new Map()));
    const k = this.key(cls, id);
    const prev = m.get(k);
    if (prev === undefined) this.count++;
    if (prev === undefined || bytes > prev) m.set(k, bytes);
  }

  /** Forgets the bin, or keeps only its first `bytes` (subtractive model items). */
  remove(csn: number, cls: BinClass, id: number, keep = 0): void {
    const m = this.streams.get(csn);
    const k = this.key(cls, id);
    const prev = m?.get(k);
    if (!m || prev === undefined) return;
    if (keep > 0) m.set(k, Math.min(prev, keep));
    else {
      m.delete(k);
      this.count--;
    }
  }

  clear(): void {
    this.streams.clear();
    this.count = 0;
  }

  /** Every entry as [csn, class, id, bytes]. */
  *entries(): Generator<[number, BinClass, number, number]> {
    for (const [csn, m] of this.streams) for (const [k, bytes] of m) yield [csn, (k % 16) as BinClass, Math.floor(k / 16), bytes];
  }

  get size(): number {
    return this.count;
  }

  get approxBytes(): number {
    return this.count * ENTRY_BYTES;
  }
}

export type ModelBin =
  | { readonly kind: 'main' }
  | { readonly kind: 'tileHeader' | 'precinct' | 'tile' | 'meta'; readonly id: number | '*' }
  | {
      readonly kind: 'implicit';
      readonly t?: readonly Range[];
      readonly c?: readonly Range[];
      readonly r?: readonly Range[];
      readonly p?: readonly Range[];
    };

export interface ModelItem {
  readonly subtract: boolean;
  /** Codestreams the item applies to; undefined = the request's codestreams. */
  readonly streams?: readonly Range[];
  readonly bin: ModelBin;
  /** `:<bytes>`: bytes held; absent (and no `layers`) = the whole bin. */
  readonly bytes?: number;
  /** `:L<n>`: the first n quality layers of a precinct (or implicit set). */
  readonly layers?: number;
}

const MAX_ITEMS = 1_000_000;

/** Splits at commas outside brackets. */
function tokens(v: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of v) {
    if (ch === '[') depth++;
    else if (ch === ']') depth = Math.max(0, depth - 1);
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.filter((t) => t !== '');
}

const bad = (field: string, v: string): ImageServerError =>
  new ImageServerError(
    'BAD_REQUEST',
    `Expected cache-model items such as "Hm,H0,P12:40,t0c0r0-2:L1" for ${field} but received "${v.length > 80 ? `${v.slice(0, 80)}…` : v}"`,
  );

/** Parses a `model=` or `need=` value. */
export function parseModel(field: string, value: string): ModelItem[] {
  const out: ModelItem[] = [];
  let streams: Range[] | undefined;
  const list = tokens(value);
  if (list.length > MAX_ITEMS) throw new ImageServerError('BAD_REQUEST', `${field} lists more than ${MAX_ITEMS} items`);
  for (let tok of list) {
    if (tok.startsWith('[')) {
      const end = tok.indexOf(']');
      if (end < 0) throw bad(field, value);
      streams = parseRanges(field, tok.slice(1, end).replace(/;/g, ','), true);
      tok = tok.slice(end + 1);
      if (tok === '') continue;
    }
    const subtract = tok.startsWith('-');
    if (subtract) tok = tok.slice(1);
    let bytes: number | undefined;
    let layers: number | undefined;
    const q = /:(L?)(\d{1,15})$/.exec(tok);
    if (q) {
      if (q[1] === 'L') layers = Number(q[2]);
      else bytes = Number(q[2]);
      tok = tok.slice(0, q.index);
    }
    let bin: ModelBin;
    let m: RegExpExecArray | null;
    if (tok === 'Hm') bin = { kind: 'main' };
    else if ((m = /^(Ht?|P|T|M)(\d{1,15}|\*)$/.exec(tok))) {
      const kind = m[1].startsWith('H') ? 'tileHeader' : m[1] === 'P' ? 'precinct' : m[1] === 'T' ? 'tile' : 'meta';
      bin = { kind, id: m[2] === '*' ? '*' : Number(m[2]) };
    } else if (/^([tcrp](\d{1,15}(-\d{1,15})?|\*))+$/.test(tok)) {
      const parts: Partial<Record<'t' | 'c' | 'r' | 'p', Range[]>> = {};
      for (const [, letter, range] of tok.matchAll(/([tcrp])(\d{1,15}(?:-\d{1,15})?|\*)/g)) {
        const key = letter as 't' | 'c' | 'r' | 'p';
        parts[key] = range === '*' ? [{ from: 0, to: Infinity }] : parseRanges(field, range);
      }
      bin = { kind: 'implicit', ...parts };
    } else throw bad(field, value);
    out.push({
      subtract,
      ...(streams ? { streams } : {}),
      bin,
      ...(bytes !== undefined ? { bytes } : {}),
      ...(layers !== undefined ? { layers } : {}),
    });
  }
  return out;
}
