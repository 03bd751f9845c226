// Pure protocol pieces: PDUs, CRC vectors, the resynchronising RTU scanner, MBAP framing.
import { describe, expect, it } from 'vitest';
import {
  MbapReader,
  ModbusProtocolError,
  RtuResponseScanner,
  crc16,
  exceptionName,
  mbapFrame,
  parseReadResponse,
  readRequestPdu,
  rtuCrcOk,
  rtuFrame,
  rtuTiming,
} from './protocol.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('CRC-16/MODBUS', () => {
  it('matches the published vectors', () => {
    // Check value of the CRC-16/MODBUS catalogue entry.
    expect(crc16(Buffer.from('123456789'))).toBe(0x4b37);
    // Modbus over Serial Line v1.02, appendix B: slave 02, function 07 → CRC 0x1241, sent 41 12.
    expect(crc16(hex('02 07'))).toBe(0x1241);
    expect(rtuFrame(2, hex('07'))).toEqual(hex('02 07 41 12'));
    // The classic read-holding-registers example: 11 03 006B 0003 → 76 87.
    expect(rtuFrame(0x11, readRequestPdu(3, 0x6b, 3))).toEqual(hex('11 03 00 6B 00 03 76 87'));
    expect(rtuFrame(1, readRequestPdu(3, 0, 10))).toEqual(hex('01 03 00 00 00 0A C5 CD'));
  });

  it('checks a frame in place', () => {
    const frame = hex('ff ff 11 03 00 6B 00 03 76 87 ee');
    expect(rtuCrcOk(frame, 2, 8)).toBe(true);
    expect(rtuCrcOk(frame, 2, 7)).toBe(false);
  });
});

describe('read PDUs', () => {
  it('encodes the four read functions and enforces the protocol limits', () => {
    expect(readRequestPdu(1, 19, 37)).toEqual(hex('01 0013 0025'));
    expect(readRequestPdu(2, 196, 22)).toEqual(hex('02 00C4 0016'));
    expect(readRequestPdu(3, 107, 3)).toEqual(hex('03 006B 0003'));
    expect(readRequestPdu(4, 8, 1)).toEqual(hex('04 0008 0001'));
    expect(() => readRequestPdu(3, 0, 126)).toThrow(RangeError);
    expect(() => readRequestPdu(1, 0, 2001)).toThrow(RangeError);
    expect(() => readRequestPdu(3, 65535, 2)).toThrow(RangeError);
    expect(readRequestPdu(1, 0, 2000)).toEqual(hex('01 0000 07D0'));
    expect(readRequestPdu(3, 65535, 1)).toEqual(hex('03 FFFF 0001'));
  });

  it('decodes responses and exceptions, and rejects answers that do not fit the request', () => {
    // Application protocol spec 6.3 example: registers 108-110 = 555, 0, 100.
    expect(parseReadResponse(3, 3, hex('03 06 022B 0000 0064'))).toEqual({ kind: 'data', data: hex('022B 0000 0064') });
    // 6.1 example: 37 coils → 5 bytes.
    expect(parseReadResponse(1, 37, hex('01 05 CD6BB20E1B'))).toEqual({ kind: 'data', data: hex('CD6BB20E1B') });
    expect(parseReadResponse(3, 3, hex('83 02'))).toEqual({ kind: 'exception', code: 2 });
    expect(parseReadResponse(4, 1, hex('84 0B'))).toEqual({ kind: 'exception', code: 11 });
    expect(() => parseReadResponse(3, 3, hex('04 06 022B 0000 0064'))).toThrow(ModbusProtocolError);
    expect(() => parseReadResponse(3, 3, hex('03 04 022B 0000'))).toThrow(/carries 4 bytes, expected 6/);
    expect(exceptionName(2)).toBe('illegal data address');
    expect(exceptionName(11)).toBe('gateway target device failed to respond');
    expect(exceptionName(99)).toBe('exception 99');
  });
});

describe('RTU timing', () => {
  it('3.5 characters below 19200 baud, 1.75 ms above', () => {
    expect(rtuTiming(9600, 11).interFrameUs).toBeCloseTo(4010.4, 1);
    expect(rtuTiming(9600, 10).charUs).toBeCloseTo(1041.7, 1);
    expect(rtuTiming(115200, 10).interFrameUs).toBe(1750);
  });
});

describe('RtuResponseScanner', () => {
  const response = rtuFrame(1, hex('03 04 0001 0002'));
  const expectation = { unitId: 1, fc: 3, count: 2 } as const;

  it('finds a clean frame', () => {
    const s = new RtuResponseScanner(expectation);
    s.push(response);
    expect(s.scan()).toEqual({ found: true, start: 0, length: 9, pdu: hex('03 04 0001 0002') });
  });

  it('skips stray bytes before the frame, including ones that look like its start', () => {
    const s = new RtuResponseScanner(expectation);
    s.push(hex('00 ff 01 03 04 01 01 03'));
    expect(s.scan()).toEqual({ found: false });
    s.push(response);
    const r = s.scan();
    expect(r).toMatchObject({ found: true, start: 8, length: 9 });
    // The fake header "01 03 04 …" at offset 2 had the right length once the real frame arrived, but not the right CRC.
    expect(s.crcErrors).toBe(1);
  });

  it('waits for the rest of a frame delivered in pieces', () => {
    const s = new RtuResponseScanner(expectation);
    for (let i = 0; i < response.length - 1; i++) {
      s.push(response.subarray(i, i + 1));
      expect(s.scan()).toEqual({ found: false });
    }
    s.push(response.subarray(response.length - 1));
    expect(s.scan()).toMatchObject({ found: true, start: 0 });
  });

  it('counts a corrupted frame as a CRC error and finds a valid one after it', () => {
    const bad = Buffer.from(response);
    bad[4] ^= 0x40;
    const s = new RtuResponseScanner(expectation);
    s.push(bad);
    expect(s.scan()).toEqual({ found: false });
    expect(s.crcErrors).toBe(1);
    s.push(response);
    expect(s.scan()).toMatchObject({ found: true, start: 9 });
  });

  it('recognises an exception answer, and ignores answers from other units or functions', () => {
    const s = new RtuResponseScanner(expectation);
    s.push(rtuFrame(2, hex('03 04 0001 0002')));
    s.push(rtuFrame(1, hex('04 04 0001 0002')));
    s.push(rtuFrame(1, hex('83 02')));
    expect(s.scan()).toEqual({ found: true, start: 18, length: 5, pdu: hex('83 02') });
    expect(s.crcErrors).toBe(0);
  });
});

describe('MBAP', () => {
  it('frames a request (application protocol over TCP, 3.1.3)', () => {
    expect(mbapFrame(0x1501, 0xff, readRequestPdu(3, 4, 1))).toEqual(hex('1501 0000 0006 FF 03 0004 0001'));
  });

  it('splits a stream into frames across chunk boundaries', () => {
    const r = new MbapReader();
    const a = mbapFrame(7, 1, hex('03 02 1234'));
    const b = mbapFrame(8, 2, hex('83 02'));
    const stream = Buffer.concat([a, b]);
    expect(r.push(stream.subarray(0, 5))).toEqual([]);
    expect(r.push(stream.subarray(5, 12))).toEqual([{ transactionId: 7, unitId: 1, pdu: hex('03 02 1234') }]);
    expect(r.push(stream.subarray(12))).toEqual([{ transactionId: 8, unitId: 2, pdu: hex('83 02') }]);
  });

  it('refuses a stream that is not Modbus TCP', () => {
    const r = new MbapReader();
    expect(() => r.push(Buffer.from('HTTP/1.1 400 Bad Request\r\n'))).toThrow(ModbusProtocolError);
  });
});
