// The chunk codec's public surface: encode one series' rows into a compact, checksummed byte
// string and back. The byte layout is documented at the top of chunk.ts.
export {
  CHUNK_FORMAT_VERSION,
  type ChunkColumnInfo,
  type ChunkInfo,
  decodeChunk,
  encodeChunk,
  MAX_ROWS,
  peekChunk,
  RECOMMENDED_MAX_ROWS,
} from './chunk.js';
export { CodecError } from './errors.js';
