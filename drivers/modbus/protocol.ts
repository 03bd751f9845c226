// The Modbus protocol, written by hand and pure (no I/O): read requests (function codes 1-4), their
// responses and exceptions, RTU framing with CRC-16 and a resynchronising response scanner, and TCP
// MBAP framing.
//
// Why not a library: the JS Modbus masters available (modbus-serial, jsmodbus) treat a serial line as a
// clean byte stream. A stray byte or a CRC error desynchronises them until the next timeout or longer,
// they neither count nor report those, and they leave bus arbitration (one transaction at a time,
// across every input sharing a port) and per-device back-off to the caller. Those are the product here,
// and the protocol subset a poller needs (four read functions) is small, so it lives in this file.

/** The read function codes: 1 coils, 2 discrete inputs, 3 holding registers, 4 input registers. */
export type ReadFunctionCode = 1 | 2 | 3 | 4;

export const FC_READ_COILS = 1;
export const FC_READ_DISCRETE_INPUTS = 2;
export const FC_READ_HOLDING_REGISTERS = 3;
export const FC_READ_INPUT_REGISTERS = 4;

/** Protocol limits of one read request (Modbus Application Protocol v1.1b3, 6.1-6.4). */
export const MAX_READ_REGISTERS = 125;
export const MAX_READ_BITS = 2000;

/** Exception codes (MB application protocol, section 7) and what they mean. */
export const EXCEPTION_NAMES: Readonly<Record<number, string>> = {
  1: 'illegal function',
  2: 'illegal data address',
  3: 'illegal data value',
  4: 'server device failure',
  5: 'acknowledge',
  6: 'server device busy',
  8: 'memory parity error',
  10: 'gateway path unavailable',
  11: 'gateway target device failed to respond',
};

export function exceptionName(code: number): string {
  return EXCEPTION_NAMES[code] ?? `exception ${code}`;
}

export function isBitFunction(fc: ReadFunctionCode): boolean {
  return fc === FC_READ_COILS || fc === FC_READ_DISCRETE_INPUTS;
}

/** Bytes of data in a normal response to a read of `count` items. */
export function responseDataBytes(fc: ReadFunctionCode, count: number): number {
  return isBitFunction(fc) ? Math.ceil(count / 8) : count * 2;
}

/** The PDU of a read request: function code, starting address, quantity (all big-endian). */
export function readRequestPdu(fc: ReadFunctionCode, address: number, count: number): Buffer {
  const max = isBitFunction(fc) ? MAX_READ_BITS : MAX_READ_REGISTERS;
  if (!Number.isInteger(count) || count < 1 || count > max) throw new RangeError(`function ${fc}: quantity ${count} outside 1-${max}`);
  if (!Number.isInteger(address) || address < 0 || address + count > 0x10000) throw new RangeError(`function ${fc}: address ${address}+${count} outside 0-65535`);
  const pdu = Buffer.alloc(5);
  pdu[0] = fc;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(count, 3);
  return pdu;
}

/** A decoded read response: the data bytes, or the exception code the server answered with. */
export type ReadResponse = { kind: 'data'; data: Buffer } | { kind: 'exception'; code: number };

/** Error for a response that is well framed but does not answer the request (wrong function, length). */
export class ModbusProtocolError extends Error {
  override readonly name = 'ModbusProtocolError';
}

/** Checks a response PDU against its request and returns its data or exception code. */
export function parseReadResponse(fc: ReadFunctionCode, count: number, pdu: Buffer): ReadResponse {
  if (pdu.length >= 2 && pdu[0] === (fc | 0x80)) return { kind: 'exception', code: pdu[1] };
  if (pdu[0] !== fc) throw new ModbusProtocolError(`response function ${pdu[0]} does not answer function ${fc}`);
  const expected = responseDataBytes(fc, count);
  if (pdu.length < 2 || pdu[1] !== expected) {
    throw new ModbusProtocolError(`response to function ${fc} x${count} carries ${pdu.length < 2 ? 0 : pdu[1]} bytes, expected ${expected}`);
  }
  if (pdu.length !== 2 + expected) {
    // The byte count is right but the frame is not (cut short, or trailing bytes): say both numbers.
    throw new ModbusProtocolError(`response to function ${fc} x${count} announces ${expected} bytes but holds ${pdu.length - 2}`);
  }
  return { kind: 'data', data: pdu.subarray(2) };
}

// ---------------------------------------------------------------------------------------------------
// RTU

const CRC_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
    table[i] = crc;
  }
  return table;
})();

/** CRC-16/MODBUS (polynomial 0xA001 reflected, initial 0xFFFF); sent low byte first. */
export function crc16(buf: Uint8Array, start = 0, end = buf.length): number {
  let crc = 0xffff;
  for (let i = start; i < end; i++) crc = (crc >>> 8) ^ CRC_TABLE[(crc ^ buf[i]) & 0xff];
  return crc;
}

/** An RTU frame: unit id, PDU, CRC (low byte first). */
export function rtuFrame(unitId: number, pdu: Buffer): Buffer {
  const frame = Buffer.alloc(pdu.length + 3);
  frame[0] = unitId;
  pdu.copy(frame, 1);
  frame.writeUInt16LE(crc16(frame, 0, pdu.length + 1), pdu.length + 1);
  return frame;
}

/** True when `frame[start, start+length)` ends with the CRC of what precedes it. */
export function rtuCrcOk(frame: Uint8Array, start: number, length: number): boolean {
  const end = start + length;
  const crc = crc16(frame, start, end - 2);
  return frame[end - 2] === (crc & 0xff) && frame[end - 1] === crc >>> 8;
}

/**
 * The character time of a serial line in microseconds, and the 3.5-character silence that separates
 * RTU frames (fixed at 1750 µs above 19200 bit/s, as the serial line spec recommends).
 */
export function rtuTiming(baudRate: number, bitsPerChar: number): { charUs: number; interFrameUs: number } {
  const charUs = (bitsPerChar * 1e6) / baudRate;
  return { charUs, interFrameUs: baudRate > 19200 ? 1750 : 3.5 * charUs };
}

/** What the scanner looks for: the response of `unitId` to function `fc` reading `count` items. */
export interface RtuExpectation {
  unitId: number;
  fc: ReadFunctionCode;
  count: number;
}

export type RtuScanResult =
  /** A valid frame at `start` (bytes before it are line noise). */
  | { found: true; start: number; length: number; pdu: Buffer }
  | { found: false };

/**
 * Finds an expected RTU response in bytes received from a line that may carry noise: stray bytes
 * before the frame, a late answer to an earlier request, a corrupted frame. A master knows what it
 * asked for, so it scans for a frame that starts with the unit id and the function code (or its
 * exception), has the length that answer must have and a valid CRC; anything else is skipped. A
 * candidate with the right header and length but a wrong CRC is counted as a CRC error.
 *
 * Incremental: feed bytes with `push`, call `scan` after each; positions already rejected are not
 * examined again.
 */
export class RtuResponseScanner {
  private buf: Buffer = Buffer.alloc(0);
  /** Offsets below this were rejected as frame starts. */
  private checked = 0;
  /** Candidates with a wrong CRC seen in the current buffer. */
  crcErrors = 0;

  constructor(private readonly expect: RtuExpectation) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  get length(): number {
    return this.buf.length;
  }

  scan(): RtuScanResult {
    const { unitId, fc, count } = this.expect;
    const dataBytes = responseDataBytes(fc, count);
    const buf = this.buf;
    for (let i = this.checked; i + 5 <= buf.length; i++) {
      if (buf[i] !== unitId) {
        this.checked = i + 1;
        continue;
      }
      let length: number;
      if (buf[i + 1] === fc && buf[i + 2] === dataBytes) length = 5 + dataBytes;
      else if (buf[i + 1] === (fc | 0x80)) length = 5;
      else {
        this.checked = i + 1;
        continue;
      }
      // Cannot decide this candidate before its last byte arrives; a later real frame cannot be
      // complete before this one is, so scanning stops here.
      if (i + length > buf.length) return { found: false };
      if (rtuCrcOk(buf, i, length)) {
        return { found: true, start: i, length, pdu: Buffer.from(buf.subarray(i + 1, i + length - 2)) };
      }
      this.crcErrors++;
      this.checked = i + 1;
    }
    return { found: false };
  }
}

// ---------------------------------------------------------------------------------------------------
// TCP (MBAP)

/** MBAP header (7 bytes) + PDU: transaction id, protocol 0, length of unit id + PDU, unit id. */
export function mbapFrame(transactionId: number, unitId: number, pdu: Buffer): Buffer {
  const frame = Buffer.alloc(7 + pdu.length);
  frame.writeUInt16BE(transactionId & 0xffff, 0);
  frame.writeUInt16BE(0, 2);
  frame.writeUInt16BE(pdu.length + 1, 4);
  frame[6] = unitId;
  pdu.copy(frame, 7);
  return frame;
}

export interface MbapFrame {
  transactionId: number;
  unitId: number;
  pdu: Buffer;
}

/** The largest MBAP length field: unit id + the 253-byte maximum PDU. */
const MBAP_MAX_LENGTH = 254;

/**
 * Splits a TCP byte stream into MBAP frames. TCP cannot resynchronise inside a stream (there is no
 * frame marker), so a header that is not Modbus throws and the caller drops the connection.
 */
export class MbapReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): MbapFrame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const frames: MbapFrame[] = [];
    while (this.buf.length >= 7) {
      const protocol = this.buf.readUInt16BE(2);
      const length = this.buf.readUInt16BE(4);
      if (protocol !== 0 || length < 2 || length > MBAP_MAX_LENGTH) {
        const head = this.buf.subarray(0, 7).toString('hex');
        this.buf = Buffer.alloc(0);
        throw new ModbusProtocolError(`not a Modbus TCP header: ${head} (protocol ${protocol}, length ${length})`);
      }
      if (this.buf.length < 6 + length) break;
      frames.push({ transactionId: this.buf.readUInt16BE(0), unitId: this.buf[6], pdu: Buffer.from(this.buf.subarray(7, 6 + length)) });
      this.buf = this.buf.subarray(6 + length);
    }
    return frames;
  }

  reset(): void {
    this.buf = Buffer.alloc(0);
  }
}
