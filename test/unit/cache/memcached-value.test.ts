import { describe, expect, it } from 'vitest';
import { decodeValue, encodeValue, parseMemcachedServers, VALUE_FORMAT } from '../../../src/cache/memcached.js';

describe('Memcached value format', () => {
  it('round-trips content type and binary body', () => {
    const body = Buffer.from([0xff, 0xd8, 0, 1, 2, 0xff, 0xd9]);
    const v = encodeValue({ contentType: 'image/jpeg', body });
    expect(v.subarray(0, 4).toString()).toBe('IIPC');
    expect(v[4]).toBe(VALUE_FORMAT);
    const d = decodeValue(v)!;
    expect(d.contentType).toBe('image/jpeg');
    expect(Buffer.compare(d.body, body)).toBe(0);
  });

  it('refuses values it did not write, or written by another format version', () => {
    expect(decodeValue(Buffer.from('Status: 200 OK\r\n\r\nbody'))).toBeUndefined(); // iipsrv's own
    expect(decodeValue(Buffer.alloc(0))).toBeUndefined();
    const v = encodeValue({ contentType: 'image/png', body: Buffer.from('x') });
    const other = Buffer.from(v);
    other[4] = VALUE_FORMAT + 1;
    expect(decodeValue(other)).toBeUndefined();
    expect(decodeValue(v.subarray(0, 8))).toBeUndefined(); // truncated content type
  });
});

describe('MEMCACHED_SERVERS parsing', () => {
  it('takes hosts with and without ports, IPv6 in brackets, and skips blanks', () => {
    expect(parseMemcachedServers('a, b:11212,,[::1]:11213, 10.0.0.1')).toEqual({
      servers: [
        { host: 'a', port: 11211 },
        { host: 'b', port: 11212 },
        { host: '::1', port: 11213 },
        { host: '10.0.0.1', port: 11211 },
      ],
      errors: [],
    });
    expect(parseMemcachedServers('').servers).toEqual([]);
    expect(parseMemcachedServers('::1').servers).toEqual([{ host: '::1', port: 11211 }]);
  });

  it('names entries it cannot use', () => {
    const r = parseMemcachedServers('good:1, bad:99999, a b, host:');
    expect(r.servers).toEqual([{ host: 'good', port: 1 }]);
    expect(r.errors).toHaveLength(3);
    expect(r.errors[0]).toMatch(/bad:99999/);
  });
});
