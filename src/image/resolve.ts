// Turns a client's image identifier into a file path that is guaranteed to lie inside
// FILESYSTEM_PREFIX. Blacklist stripping of `../` (iipsrv) is not a defence: we reject `..`
// segments and NUL outright, then resolve symbolic links and check containment with a
// separator boundary, so `/images/a` never admits `/images/ab/...` or a link pointing out.

import fs from 'node:fs/promises';
import path from 'node:path';
import { ImageServerError } from '../core/errors.js';

export interface ResolvedFile {
  /** Real path of the file (symbolic links resolved). */
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
  /** The member of an image stack served from the file (absent: the first, or no stack). */
  readonly page?: number;
}

export interface PathRules {
  readonly prefix: string;
  readonly suffix: string;
}

const DOT_DOT = /(^|[/\\])\.\.([/\\]|$)/;

/** The directory every image must lie in: the prefix itself, or its folder for a stem prefix. */
export function rootOf(prefix: string): string {
  if (prefix === '') return path.resolve('/');
  return prefix.endsWith('/') || prefix.endsWith(path.sep) ? path.resolve(prefix) : path.dirname(path.resolve(prefix));
}

const realRoots = new Map<string, Promise<string>>();
function realRoot(root: string): Promise<string> {
  let p = realRoots.get(root);
  if (!p) {
    p = fs.realpath(root).catch(() => root);
    realRoots.set(root, p);
  }
  return p;
}

/**
 * realpath costs one lstat per path component; its answer is kept briefly. Only the mapping
 * to a real path is kept, never the file's size or time: those are read on every request, so
 * a replaced file is noticed at once. A symbolic link retargeted within the window keeps its
 * old, already checked target for at most that long.
 */
const REALPATH_TTL_MS = 2000;
const REALPATH_MAX = 10_000;
const realpaths = new Map<string, { real: string; until: number }>();

async function cachedRealpath(p: string): Promise<string> {
  const now = Date.now();
  const hit = realpaths.get(p);
  if (hit && hit.until > now) return hit.real;
  const real = await fs.realpath(p);
  if (realpaths.size >= REALPATH_MAX) realpaths.clear();
  realpaths.set(p, { real, until: now + REALPATH_TTL_MS });
  return real;
}

function notFound(identifier: string, detail: string): ImageServerError {
  return new ImageServerError('NOT_FOUND', `Image not found: ${identifier}`, detail);
}

/**
 * Resolves an identifier that has already been percent-decoded. Throws FORBIDDEN_PATH (403)
 * for traversal attempts and NOT_FOUND (404) for anything that is not a readable regular file.
 */
export async function resolveImagePath(identifier: string, rules: PathRules): Promise<ResolvedFile> {
  if (identifier === '' || identifier.includes('\0')) {
    throw new ImageServerError('FORBIDDEN_PATH', 'Forbidden: invalid image identifier');
  }
  if (DOT_DOT.test(identifier)) {
    throw new ImageServerError('FORBIDDEN_PATH', 'Forbidden: image identifiers may not contain ".." segments');
  }
  // Plain concatenation, as iipsrv does: FILESYSTEM_PREFIX normally ends with '/'.
  const joined = path.resolve(rules.prefix + identifier + rules.suffix);
  const root = await realRoot(rootOf(rules.prefix));
  let real: string;
  try {
    real = await cachedRealpath(joined);
  } catch (err) {
    throw notFound(identifier, `${joined}: ${(err as Error).message}`);
  }
  const boundary = root.endsWith(path.sep) ? root : root + path.sep;
  if (!real.startsWith(boundary)) {
    throw new ImageServerError('FORBIDDEN_PATH', 'Forbidden: image lies outside the image root', `${joined} -> ${real}`);
  }
  let st;
  try {
    st = await fs.stat(real);
  } catch (err) {
    realpaths.delete(joined);
    throw notFound(identifier, `${real}: ${(err as Error).message}`);
  }
  if (!st.isFile()) throw notFound(identifier, `${real} is not a regular file`);
  return { path: real, size: st.size, mtimeMs: Math.floor(st.mtimeMs) };
}

/**
 * Clients written for iipsrv double-encode `%`, `+` and `/` because iipsrv decodes twice. We
 * decode once; only when that finds nothing and still holds `%XX` do we try a second decode,
 * which then goes through the same containment checks.
 */
export async function resolveWithFallback(identifier: string, rules: PathRules): Promise<ResolvedFile> {
  try {
    return await resolveImagePath(identifier, rules);
  } catch (err) {
    if (!(err instanceof ImageServerError) || err.code !== 'NOT_FOUND' || !/%[0-9a-f]{2}/i.test(identifier)) throw err;
    let again: string;
    try {
      again = decodeURIComponent(identifier);
    } catch {
      throw err;
    }
    return resolveImagePath(again, rules);
  }
}
