import { describe, expect, it } from 'vitest';
import {
  FCGI_MAX_CONTENT,
  FastCgiProtocolError,
  RecordParser,
  RecordType,
  decodeBeginRequest,
  decodeHeader,
  decodeNameValuePairs,
  encodeHeader,
  encodeNameValuePairs,
  encodeRecord,
  encodeRecords,
  encodeStream,
  type FcgiRecord,
} from '../../../src/frontends/fastcgi/records.js';
import { begin, nv, parseAll, rec, request } from './helpers.js';

const collect = (parser: RecordParser, chunk: Buffer): FcgiRecord[] => [...parser.push(chunk)];

describe('record header', () => {
  it('round-trips', () => {
    const h = {
      version: 1,
      type: RecordType.STDOUT,
      requestId: 0xbeef,
      contentLength: 65535,
      paddingLength: 7,
    };
    const buf = encodeHeader(h);
    expect(buf.length).toBe(8);
    expect(buf.toString('hex')).toBe('0106beefffff0700');
    expect(decodeHeader(buf)).toEqual(h);
  });

  it('rejects a bad version and short fixed-size bodies', () => {
    expect(() => decodeHeader(Buffer.from('0206000100000000', 'hex'))).toThrow(FastCgiProtocolError);
    expect(() => decodeHeader(Buffer.from('0101000100070000', 'hex'))).toThrow(FastCgiProtocolError);
    expect(() => decodeHeader(Buffer.from('0101000100080000', 'hex'))).not.toThrow();
    expect(() => decodeHeader(Buffer.from('0101', 'hex'))).toThrow(FastCgiProtocolError);
    expect(() => decodeBeginRequest(Buffer.alloc(3))).toThrow(FastCgiProtocolError);
  });

  it('encodes records padded to a multiple of 8', () => {
    for (let len = 0; len < 40; len++) {
      const buf = encodeRecord(RecordType.STDOUT, 1, Buffer.alloc(len, 0x61));
      expect(buf.length % 8).toBe(0);
      expect(buf[6]).toBe(buf.length - 8 - len);
      expect(buf.readUInt16BE(4)).toBe(len);
    }
    expect(() => encodeRecord(RecordType.STDOUT, 1, Buffer.alloc(FCGI_MAX_CONTENT + 1))).toThrow(RangeError);
  });
});

describe('name-value pairs', () => {
  const long = 'x'.repeat(300);
  const pairs: Array<[string, string]> = [
    ['A', 'b'],
    ['EMPTY', ''],
    [long, 'short'],
    ['SHORT', long],
    ['N'.repeat(127), 'v'.repeat(128)],
  ];

  it('decodes 1- and 4-byte lengths', () => {
    expect(decodeNameValuePairs(nv(pairs))).toEqual(pairs);
  });

  it('encodes what the independent encoder does', () => {
    expect(encodeNameValuePairs(pairs).equals(nv(pairs))).toBe(true);
    expect(decodeNameValuePairs(encodeNameValuePairs(pairs))).toEqual(pairs);
  });

  it('rejects overrunning lengths', () => {
    const good = nv([['NAME', 'value']]);
    expect(() => decodeNameValuePairs(good.subarray(0, good.length - 1))).toThrow(FastCgiProtocolError);
    expect(() => decodeNameValuePairs(Buffer.from([0x80, 0, 0]))).toThrow(FastCgiProtocolError);
    expect(() => decodeNameValuePairs(Buffer.from([4]))).toThrow(FastCgiProtocolError);
    expect(() => decodeNameValuePairs(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 0]))).toThrow(FastCgiProtocolError);
  });
});

describe('RecordParser', () => {
  const stream = Buffer.concat([
    request(
      1,
      [
        ['REQUEST_METHOD', 'GET'],
        ['QUERY_STRING', 'a=b'],
      ],
      { keepConn: true, body: Buffer.alloc(1000, 7) },
    ),
    rec(RecordType.GET_VALUES, 0, nv([['FCGI_MAX_CONNS', '']]), 3),
    rec(99, 0, Buffer.from('odd'), 255),
    request(2, [['X', 'y'.repeat(70_000)]]),
  ]);

  it('gives the same records fed byte by byte as fed whole', () => {
    const whole = collect(new RecordParser(), stream);
    expect(whole.map((r) => [r.type, r.requestId, r.content.length])).toEqual(
      parseAll(stream).records.map((r) => [r.type, r.id, r.content.length]),
    );
    const p = new RecordParser();
    const byByte: FcgiRecord[] = [];
    for (let i = 0; i < stream.length; i++) byByte.push(...collect(p, stream.subarray(i, i + 1)));
    expect(byByte).toEqual(whole);
    expect(p.pending).toBe(0);

    const q = new RecordParser();
    const random: FcgiRecord[] = [];
    for (let i = 0, step = 1; i < stream.length; i += step, step = (step * 7 + 3) % 4001) {
      random.push(...collect(q, stream.subarray(i, i + step)));
    }
    expect(random).toEqual(whole);
  });

  it('holds partial records until complete', () => {
    const p = new RecordParser();
    const one = begin(5, true);
    expect(collect(p, one.subarray(0, 11))).toEqual([]);
    expect(p.pending).toBe(11);
    const out = collect(p, one.subarray(11));
    expect(out).toHaveLength(1);
    expect(decodeBeginRequest(out[0].content)).toEqual({ role: 1, flags: 1 });
  });

  it('throws on a bad version mid-stream', () => {
    const bad = Buffer.concat([begin(1, false), Buffer.from('0901000100080000', 'hex')]);
    const p = new RecordParser();
    expect(() => collect(p, bad)).toThrow(FastCgiProtocolError);
  });

  it('throws on a zero-length BEGIN_REQUEST', () => {
    expect(() => collect(new RecordParser(), rec(RecordType.BEGIN_REQUEST, 1))).toThrow(FastCgiProtocolError);
  });
});

describe('stream encoding', () => {
  it('splits a 100 KB body into records of at most 65535 bytes, then an empty one', () => {
    const body = Buffer.alloc(100 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const buf = encodeStream(RecordType.STDOUT, 3, body);
    const { records, rest } = parseAll(buf);
    expect(rest).toBe(0);
    expect(records.length).toBeGreaterThanOrEqual(3);
    for (const r of records) {
      expect(r.type).toBe(RecordType.STDOUT);
      expect(r.id).toBe(3);
      expect(r.content.length).toBeLessThanOrEqual(65535);
    }
    expect(records.at(-1)!.content.length).toBe(0);
    expect(Buffer.concat(records.map((r) => r.content)).equals(body)).toBe(true);
    expect(buf.length % 8).toBe(0);
  });

  it('coalesces several records into one buffer', () => {
    const buf = encodeRecords([
      { type: RecordType.STDOUT, requestId: 1, content: Buffer.from('hello') },
      { type: RecordType.STDOUT, requestId: 1, content: Buffer.alloc(0) },
    ]);
    expect(buf.length).toBe(16 + 8);
    expect(parseAll(buf).records.map((r) => r.content.toString())).toEqual(['hello', '']);
  });
});
