// The Memcached settings in loadConfig: off unless MEMCACHED_SERVERS is set, iipsrv's expiry
// default, and a named warning for each value that cannot be used.

import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';

describe('Memcached configuration', () => {
  it('is off by default, with iipsrv expiry and memcached item limit defaults', () => {
    const { config, settings, warnings } = loadConfig({});
    expect(config.memcachedServers).toBe('');
    expect(config.memcachedTimeout).toBe(86400);
    expect(config.memcachedMaxItemBytes).toBe(1048576);
    expect(config.memcachedDeadlineMs).toBe(40);
    expect(config.memcachedRetrySeconds).toBe(5);
    expect(settings).toContainEqual(['MEMCACHED_SERVERS', '(none: no Memcached tier)']);
    expect(warnings).toEqual([]);
  });

  it('normalises the server list and names the entries it drops', () => {
    const { config, warnings } = loadConfig({ MEMCACHED_SERVERS: 'cache1, cache2:11212, [::1]:11213, bad:0' });
    expect(config.memcachedServers).toBe('cache1:11211,cache2:11212,[::1]:11213');
    expect(warnings).toEqual(['MEMCACHED_SERVERS: port out of range in "bad:0"; that entry is ignored']);
  });

  it('reports bad numbers by name and keeps working', () => {
    const { config, warnings } = loadConfig({ MEMCACHED_TIMEOUT: 'soon', MEMCACHED_DEADLINE_MS: '0', MEMCACHED_RETRY_SECONDS: '1000' });
    expect(config.memcachedTimeout).toBe(86400);
    expect(config.memcachedDeadlineMs).toBe(1);
    expect(config.memcachedRetrySeconds).toBe(300);
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toMatch(/^MEMCACHED_TIMEOUT: /);
  });
});
