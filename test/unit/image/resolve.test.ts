import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveImagePath, resolveWithFallback } from '../../../src/image/resolve.js';

let root: string;
let outside: string;

beforeAll(() => {
  const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'iipsrv-resolve-')));
  root = path.join(base, 'images');
  outside = path.join(base, 'images-private');
  fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(root, 'a.tif'), 'x');
  fs.writeFileSync(path.join(root, 'sub', 'b c+d.tif'), 'x');
  fs.writeFileSync(path.join(root, 'pct%41.tif'), 'x');
  fs.writeFileSync(path.join(outside, 'secret.tif'), 'x');
  fs.symlinkSync(path.join(outside, 'secret.tif'), path.join(root, 'link.tif'));
  fs.symlinkSync(path.join(root, 'a.tif'), path.join(root, 'inside-link.tif'));
  fs.symlinkSync(outside, path.join(root, 'dirlink'));
});

afterAll(() => fs.rmSync(path.dirname(root), { recursive: true, force: true }));

const rules = () => ({ prefix: `${root}/`, suffix: '' });

describe('path containment', () => {
  it('resolves files inside the root', async () => {
    const f = await resolveImagePath('a.tif', rules());
    expect(f.path).toBe(path.join(root, 'a.tif'));
    expect(f.size).toBe(1);
    expect((await resolveImagePath('/sub/b c+d.tif', rules())).path).toBe(path.join(root, 'sub', 'b c+d.tif'));
    expect((await resolveImagePath('inside-link.tif', rules())).path).toBe(path.join(root, 'a.tif'));
  });

  it('applies FILESYSTEM_SUFFIX', async () => {
    expect((await resolveImagePath('a', { prefix: `${root}/`, suffix: '.tif' })).path).toBe(path.join(root, 'a.tif'));
  });

  it.each(['../images-private/secret.tif', 'sub/../../images-private/secret.tif', '..', 'a.tif\0', '..\\x'])(
    'refuses %j with 403',
    async (id) => {
      await expect(resolveImagePath(id, rules())).rejects.toMatchObject({ code: 'FORBIDDEN_PATH', status: 403 });
    },
  );

  it('refuses symbolic links that lead out of the root', async () => {
    await expect(resolveImagePath('link.tif', rules())).rejects.toMatchObject({ status: 403 });
    await expect(resolveImagePath('dirlink/secret.tif', rules())).rejects.toMatchObject({ status: 403 });
  });

  it('checks the boundary: a sibling folder sharing the prefix is outside', async () => {
    // prefix ".../images" as a stem: root is its folder, so images-private is reachable only
    // through the identifier, which then starts with "-private/" and is rejected as missing.
    await expect(resolveImagePath('-private/secret.tif', { prefix: root, suffix: '' })).resolves.toBeDefined();
    await expect(resolveImagePath('../images-private/secret.tif', { prefix: `${root}/`, suffix: '' })).rejects.toMatchObject({
      status: 403,
    });
  });

  it('answers 404 for missing files and folders without a path in the message', async () => {
    const err = (await resolveImagePath('nope.tif', rules()).catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({ code: 'NOT_FOUND', status: 404, message: 'Image not found: nope.tif' });
    expect(err.message).not.toContain(root);
    await expect(resolveImagePath('sub', rules())).rejects.toMatchObject({ status: 404 });
  });

  it('decodes a second time only as a fallback, and re-checks containment', async () => {
    expect((await resolveWithFallback('sub%2Fb c%2Bd.tif', rules())).path).toBe(path.join(root, 'sub', 'b c+d.tif'));
    expect((await resolveWithFallback('pct%41.tif', rules())).path).toBe(path.join(root, 'pct%41.tif'));
    await expect(resolveWithFallback('%2e%2e%2fimages-private%2fsecret.tif', rules())).rejects.toMatchObject({ status: 403 });
  });
});
