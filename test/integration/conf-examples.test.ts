// Every file in conf-examples/ is booted in a real server by some integration test; this table
// says which, and fails when an example is added without one (or a test file goes away).

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../../scripts/servers.js';

const COVERED_BY: Record<string, string> = {
  'apache-fcgid.conf': 'conf-apache.test.ts',
  'apache-proxy-fcgi.conf': 'conf-apache.test.ts',
  'lighttpd.conf': 'conf-lighttpd.test.ts',
  'lighttpd-hostport.conf': 'conf-lighttpd.test.ts',
  'nginx.conf': 'iiif-nginx.test.ts', // startNginx's default example
  'nginx-upstream.conf': 'memcached-shared.test.ts',
  'nginx-jpip.conf': 'jpip-nginx.test.ts',
  'spawn-fcgi.sh': 'conf-spawn-fcgi.test.ts',
  'iipsrv.service': 'conf-systemd.test.ts',
};

describe('conf-examples', () => {
  const files = fs.readdirSync(path.join(ROOT, 'conf-examples')).sort();

  it.each(files)('%s is exercised by an integration test', (file) => {
    const test = COVERED_BY[file];
    expect(test, `add a test that boots conf-examples/${file}`).toBeDefined();
    const text = fs.readFileSync(path.join(ROOT, 'test/integration', test), 'utf8');
    if (file !== 'nginx.conf') expect(text).toContain(file);
  });
});
