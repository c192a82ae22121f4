// `npm install` / `npm ci` hook: builds the JPEG 2000 addon (binding.gyp →
// build/Release/iipsrv_openjpeg.node) with node-gyp against the system libopenjp2. It never
// fails the install: without libopenjp2-7-dev or a compiler it prints a notice and the server
// uses the slower WebAssembly decoder (@cornerstonejs/codec-openjpeg) instead.
// IIPSRV_SKIP_ADDON=1 skips the build.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const notice = (why) => {
  console.log(`iipsrv: JPEG 2000 native decoder not built (${why}); the WebAssembly fallback will be used.`);
  console.log('iipsrv: install libopenjp2-7-dev and a C compiler, then run `node scripts/build-addon.mjs`.');
};

function findNodeGyp() {
  const candidates = [];
  // npm sets this in lifecycle scripts to its bundled node-gyp.
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  if (process.env.npm_execpath)
    candidates.push(join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const prefix = dirname(dirname(process.execPath));
  candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((c) => existsSync(c));
}

function hasOpenJpegHeaders() {
  const pc = spawnSync('pkg-config', ['--exists', 'libopenjp2'], { stdio: 'ignore' });
  if (pc.status === 0) return true;
  return existsSync('/usr/include/openjpeg-2.5/openjpeg.h') || existsSync('/usr/local/include/openjpeg-2.5/openjpeg.h');
}

function main() {
  if (process.env.IIPSRV_SKIP_ADDON === '1') return notice('IIPSRV_SKIP_ADDON=1');
  if (!hasOpenJpegHeaders()) return notice('libopenjp2 headers not found');
  const gyp = findNodeGyp();
  if (!gyp) return notice('node-gyp not found');
  const args = [gyp, 'rebuild'];
  // Use the headers installed with Node when present: no download (the network may be closed).
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) return notice(`node-gyp exited with ${r.status ?? r.signal}`);
  if (!existsSync(join(root, 'build', 'Release', 'iipsrv_openjpeg.node'))) return notice('no output from node-gyp');
  console.log('iipsrv: JPEG 2000 native decoder built (build/Release/iipsrv_openjpeg.node).');
}

try {
  main();
} catch (err) {
  notice(err instanceof Error ? err.message : String(err));
}
