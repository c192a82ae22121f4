// JPP-stream message encoding: VBAS, Bin-ID forms, Class/CSn inheritance, the `len` budget
// (headers and bodies count, the EOR does not) and the worked byte examples of the reference.

import { describe, expect, it } from 'vitest';
import { EOR, MessageWriter, vbas, vbasLength } from '../../../src/protocols/jpip/messages.js';

const hex = (b: Buffer): string => b.toString('hex');

describe('VBAS', () => {
  it.each([
    [0, '00'],
    [123, '7b'],
    [127, '7f'],
    [128, '8100'],
    [987, '875b'],
    [16384, '818000'],
    [2 ** 35 + 5, '8180808080' + '05'],
  ])('%i is %s', (v, bytes) => {
    expect(hex(vbas(v))).toBe(bytes);
    expect(vbasLength(v)).toBe(bytes.length / 2);
  });
});

describe('MessageWriter', () => {
  it('writes the first message of a response in full form and inherits later', () => {
    const w = new MessageWriter(Infinity);
    w.add(6, 0, 0, 0, Buffer.alloc(123, 1), true);
    w.add(0, 0, 18, 0, Buffer.alloc(37, 2), false);
    w.add(0, 0, 1, 0, Buffer.alloc(987, 3), false);
    w.add(8, 0, 0, 0, Buffer.alloc(0), true);
    const out = w.finish(EOR.WINDOW_DONE);
    // 70 06 00 00 7b: bb=11, last, id 0; class 6, CSn 0, offset 0, length 123.
    expect(hex(out.subarray(0, 5))).toBe('7006' + '00' + '00' + '7b');
    let p = 5 + 123;
    // Class changes from 6 to 0 (CSn kept): bb=10 with the class, id 18 needs an extension byte.
    expect(hex(out.subarray(p, p + 5))).toBe('c0' + '12' + '00' + '00' + '25');
    p += 5 + 37;
    // Same class and CSn: bb=01, the reference's "21 00 87 5b".
    expect(hex(out.subarray(p, p + 4))).toBe('2100875b');
    p += 4 + 987;
    // "50 08 00 00": bb=10, last, class 8, offset 0, length 0.
    expect(hex(out.subarray(p, p + 4))).toBe('50080000');
    p += 4;
    expect(hex(out.subarray(p))).toBe('000200');
    expect(w.used).toBe(out.length - 3);
  });

  it('puts the top id bits in the first byte and 7 bits in each extension byte', () => {
    const w = new MessageWriter(Infinity);
    w.add(0, 0, 15, 0, Buffer.alloc(0), false);
    w.add(0, 0, 16, 0, Buffer.alloc(0), false);
    w.add(0, 0, 2047, 0, Buffer.alloc(0), false);
    w.add(0, 0, 2048, 0, Buffer.alloc(0), false);
    const out = w.finish(EOR.WINDOW_DONE);
    expect(hex(out)).toBe(
      '6f' +
        '0000' +
        '0000' + // id 15 in one byte (full form: class 0, CSn 0)
        'a010' +
        '0000' + // 16 = 0000 | 0010000
        'af7f' +
        '0000' + // 2047 = 1111 | 1111111
        'a09000' +
        '0000' + // 2048 = 0000 | 0010000 | 0000000 (two extension bytes)
        '000200',
    );
  });

  it('repeats Class and CSn when the codestream changes', () => {
    const w = new MessageWriter(Infinity);
    w.add(6, 0, 0, 0, Buffer.alloc(1), true);
    w.add(6, 1, 0, 0, Buffer.alloc(1), true);
    const out = w.finish(EOR.WINDOW_DONE);
    expect(hex(out)).toBe('7006000001' + '00' + '7006010001' + '00' + '000200');
  });

  it('cuts a message to fill the len budget exactly and refuses what does not fit', () => {
    const w = new MessageWriter(100);
    expect(w.room(0, 0, 3, 0, 500)).toBe(95); // header 5 bytes (full form, 2-byte length) + 95
    w.add(0, 0, 3, 0, Buffer.alloc(95), false);
    expect(w.used).toBe(100);
    expect(w.room(0, 0, 3, 95, 10)).toBe(-1);
    const small = new MessageWriter(6);
    expect(small.room(0, 0, 3, 0, 10)).toBe(1); // 5 header bytes (1-byte length) + 1
    expect(small.room(8, 0, 0, 0, 0)).toBe(0); // an empty message: its 5-byte header fits
    expect(new MessageWriter(4).room(8, 0, 0, 0, 0)).toBe(-1);
  });

  it('ends every response with an EOR, even an empty one', () => {
    expect(hex(new MessageWriter(0).finish(EOR.BYTE_LIMIT))).toBe('000400');
  });
});
