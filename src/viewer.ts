// The demo viewer of the standalone HTTP mode: the page, OpenSeadragon from npm (no CDN), and
// a JSON list of the images under FILESYSTEM_PREFIX for the page's picker.

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StaticAnswer } from './frontends/http.js';

/** The package root, found by walking up from this module (works from src/ and dist/src/). */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    if (fs.existsSync(candidate) && fs.existsSync(path.join(dir, 'public'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('package root not found');
    dir = up;
  }
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.map': 'application/json',
};

const IMAGE_EXT = /\.(tiff?|jp2|j2k|jpx|jpe?g|ptif)$/i;

/** Image files under `root`, relative, sorted; bounded so a huge tree cannot stall the page. */
export async function listImages(root: string, limit = 500): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string, rel: string, depth: number): Promise<void> => {
    if (depth > 6 || found.length >= limit) return;
    let entries: fs.Dirent[];
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (found.length >= limit || e.name.startsWith('.')) continue;
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(path.join(dir, e.name), r, depth + 1);
      else if (e.isFile() && IMAGE_EXT.test(e.name)) found.push(r);
    }
  };
  await walk(root, '', 0);
  return found;
}

export function createViewerRoutes(imageRoot: string): (pathname: string) => Promise<StaticAnswer | undefined> {
  const root = packageRoot();
  const publicDir = path.join(root, 'public');
  const osdDir = path.join(root, 'node_modules', 'openseadragon', 'build', 'openseadragon');
  const serveFile = async (dir: string, rel: string): Promise<StaticAnswer | undefined> => {
    const full = path.resolve(dir, rel);
    if (!full.startsWith(dir + path.sep)) return undefined;
    try {
      const body = await fsp.readFile(full);
      return { contentType: TYPES[path.extname(full)] ?? 'application/octet-stream', body, cacheControl: 'max-age=3600' };
    } catch {
      return undefined;
    }
  };
  return async (pathname) => {
    if (pathname === '/' || pathname === '/index.html') return serveFile(publicDir, 'index.html');
    if (pathname === '/images.json') {
      const list = await listImages(imageRoot);
      return { contentType: 'application/json', body: Buffer.from(JSON.stringify(list)) };
    }
    if (pathname.startsWith('/openseadragon/')) return serveFile(osdDir, decodeURIComponent(pathname.slice(15)));
    if (pathname.startsWith('/viewer/')) return serveFile(publicDir, decodeURIComponent(pathname.slice(8)));
    return undefined;
  };
}
