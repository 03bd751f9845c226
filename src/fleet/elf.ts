// The architecture of a binary, from its ELF header, so `fleet sign` cannot list an arm64 build as x64.
import { closeSync, openSync, readSync } from 'node:fs';
import type { Arch } from './manifest.js';

/** e_machine values (ELF specification, "Machine architectures"). */
const MACHINES: Record<number, Arch> = { 0x3e: 'x64', 0xb7: 'arm64' };

/** Reads the architecture from the first 20 bytes of an ELF file; throws when it is not one sluice ships. */
export function elfArch(file: string): Arch {
  const header = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  let n: number;
  try {
    n = readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  if (n < 20 || header.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file} is not an ELF binary`);
  // EI_CLASS 2 = 64-bit, EI_DATA 1 = little-endian: both targets are little-endian 64-bit.
  if (header[4] !== 2 || header[5] !== 1) throw new Error(`${file} is not a little-endian 64-bit ELF binary`);
  const machine = header.readUInt16LE(18);
  const arch = MACHINES[machine];
  if (!arch) throw new Error(`${file} is built for ELF machine 0x${machine.toString(16)}, not x86-64 (0x3e) or AArch64 (0xb7)`);
  return arch;
}
