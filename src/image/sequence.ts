// Image sequences and 3D views (iipsrv-behaviour.md §11.5): when `<prefix><path>` is not a file,
// `<path><FILENAME_PATTERN><HHH>_<VVV>.<ext>` files form a sequence of views, horizontal angle
// HHH and vertical angle VVV (three digits). `000_090` must exist and fixes the extension; the
// horizontal angles are those with `_090`, the vertical ones those with `000_`. A request's
// member (IIP SDS) picks the view, (0, 90) by default. Every member path goes through the same
// containment checks as a plain identifier (src/image/resolve.ts); FILESYSTEM_SUFFIX is not
// applied to sequence names (as iipsrv).

import fs from 'node:fs/promises';
import path from 'node:path';
import { ImageServerError } from '../core/errors.js';
import type { ImageViews } from '../core/image-info.js';
import type { ImageMember } from '../protocols/protocol.js';
import { resolveImagePath, resolveWithFallback, type PathRules, type ResolvedFile } from './resolve.js';

export interface SequenceRules extends PathRules {
  /** FILENAME_PATTERN, `_pyr_` by default; empty switches sequences off. */
  readonly pattern: string;
}

export interface ResolvedImage {
  readonly file: ResolvedFile;
  /** Set for sequences: the angles that exist. */
  readonly views?: ImageViews;
  /** The member served (sequences only). */
  readonly member?: ImageMember;
}

export const DEFAULT_MEMBER: ImageMember = { horizontal: 0, vertical: 90 };

/** Directory listings, kept briefly: a sequence is looked up on every request for it. */
const LISTING_TTL_MS = 2000;
const LISTING_MAX = 1000;
const listings = new Map<string, { names: Promise<string[]>; until: number }>();

function listDirectory(dir: string): Promise<string[]> {
  const now = Date.now();
  const hit = listings.get(dir);
  if (hit && hit.until > now) return hit.names;
  const names = fs.readdir(dir).catch(() => [] as string[]);
  if (listings.size >= LISTING_MAX) listings.clear();
  listings.set(dir, { names, until: now + LISTING_TTL_MS });
  return names;
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const pad3 = (n: number): string => String(n).padStart(3, '0');

/** The views of the sequence named `identifier`, or null when there is none. */
export async function findSequence(identifier: string, rules: SequenceRules): Promise<{ ext: string; views: ImageViews } | null> {
  if (rules.pattern === '') return null;
  const full = rules.prefix + identifier;
  const dir = path.dirname(path.resolve(full));
  const stem = path.basename(full) + rules.pattern;
  // A trailing slash in the identifier names a directory, not a sequence stem.
  if (full.endsWith('/') || stem === rules.pattern) return null;
  const names = await listDirectory(dir);
  const member = new RegExp(`^${escapeRegExp(stem)}(\\d{3})_(\\d{3})\\.([A-Za-z0-9]+)$`);
  const parsed = names.map((n) => member.exec(n)).filter((m): m is RegExpExecArray => m !== null);
  const defaults = parsed.filter((m) => m[1] === '000' && m[2] === '090');
  // Exactly one default view: its extension is the sequence's.
  if (defaults.length !== 1) return null;
  const ext = defaults[0][3];
  const horizontal = new Set<number>();
  const vertical = new Set<number>();
  for (const m of parsed) {
    if (m[3] !== ext) continue;
    if (m[2] === '090') horizontal.add(Number(m[1]));
    if (m[1] === '000') vertical.add(Number(m[2]));
  }
  const sorted = (s: Set<number>): number[] => [...s].sort((a, b) => a - b);
  return { ext, views: { horizontal: sorted(horizontal), vertical: sorted(vertical) } };
}

/**
 * Resolves an identifier to a file: the file itself when it exists, else the requested member of
 * the sequence it names. `member` is ignored for plain files (iipsrv has no other meaning for it
 * without image stacks).
 */
export async function resolveImage(identifier: string, member: ImageMember | undefined, rules: SequenceRules): Promise<ResolvedImage> {
  let notFound: ImageServerError;
  try {
    return { file: await resolveWithFallback(identifier, rules) };
  } catch (err) {
    if (!(err instanceof ImageServerError) || err.code !== 'NOT_FOUND') throw err;
    notFound = err;
  }
  const seq = await findSequence(identifier, rules);
  if (!seq) throw notFound;
  const want = member ?? DEFAULT_MEMBER;
  const h = want.horizontal;
  const v = want.vertical;
  if (!Number.isInteger(h) || !Number.isInteger(v) || h < 0 || v < 0 || h > 999 || v > 999) {
    throw new ImageServerError('NOT_FOUND', `Image not found: ${identifier} (view ${h},${v})`);
  }
  const name = `${identifier}${rules.pattern}${pad3(h)}_${pad3(v)}.${seq.ext}`;
  try {
    const file = await resolveImagePath(name, { prefix: rules.prefix, suffix: '' });
    return { file, views: seq.views, member: { horizontal: h, vertical: v } };
  } catch (err) {
    if (err instanceof ImageServerError && err.code === 'NOT_FOUND') {
      throw new ImageServerError('NOT_FOUND', `Image not found: ${identifier} (view ${h},${v})`, err.detail);
    }
    throw err;
  }
}
