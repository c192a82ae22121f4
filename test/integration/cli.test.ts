// The command line as operators use it: --help, --version, bad arguments, configuration
// messages, the HTTP mode with its viewer, request logging, and signals.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSample } from '../../scripts/make-sample.js';
import { childEnv, CLI, freePort, waitForPort } from '../../scripts/servers.js';

let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iipsrv-cli-'));
  await makeSample(path.join(dir, 'images', 'sample.tif'), 600, 400);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [CLI, ...args], { env: childEnv(env), encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] });

describe('command line', () => {
  it('prints usage with --help and the version with --version', () => {
    const help = run(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--bind');
    expect(help.stdout).toContain('--http');
    const version = run(['--version']);
    expect(version.status).toBe(0);
    expect(version.stdout).toMatch(/^iipsrv \d+\.\d+\.\d+/);
  });

  it('rejects bad arguments with a message and exit status 1', () => {
    for (const args of [['--bind'], ['--bind', '127.0.0.1:1', '--backlog', 'x'], ['--frobnicate'], ['--http', 'nope']]) {
      const r = run(args);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^iipsrv: /);
    }
  });

  it('refuses to run as plain CGI (no socket on fd 0, no --bind)', () => {
    const r = run([]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('not a listening socket');
  });

  it('serves HTTP with the viewer, names invalid settings, logs requests and stops on SIGTERM', async () => {
    const port = await freePort();
    const log = path.join(dir, 'iipsrv.log');
    const proc = spawn(process.execPath, [CLI, '--http', `127.0.0.1:${port}`], {
      env: childEnv({ FILESYSTEM_PREFIX: `${dir}/images/`, LOGFILE: log, VERBOSITY: '2', JPEG_QUALITY: 'best' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d));
    proc.stdout.on('data', (d: Buffer) => (stdout += d));
    try {
      await waitForPort(port);
      const page = await fetch(`http://127.0.0.1:${port}/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('/openseadragon/openseadragon.min.js');
      const osd = await fetch(`http://127.0.0.1:${port}/openseadragon/openseadragon.min.js`);
      expect(osd.status).toBe(200);
      expect(await fetch(`http://127.0.0.1:${port}/images.json`).then((r) => r.json())).toEqual(['sample.tif']);
      const tile = await fetch(`http://127.0.0.1:${port}/iiif/sample.tif/full/100,/0/default.jpg`);
      expect(tile.status).toBe(200);
      expect(stderr).toContain('JPEG_QUALITY');
      expect(stdout).toContain(`http://127.0.0.1:${port}/`);
    } finally {
      const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
      proc.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
    const lines = fs.readFileSync(log, 'utf8');
    expect(lines).toMatch(/JPEG_QUALITY: expected an integer but received "best"; using 75/);
    expect(lines).toMatch(/GET \/iiif\/sample\.tif\/full\/100,\/0\/default\.jpg 200 \d+B [\d.]+ms/);
    expect(lines).toContain('Caught SIGTERM signal');
  });
});
