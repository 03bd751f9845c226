// The one error type the codec throws for bad input bytes; encoding bugs in the caller are RangeErrors.

/** Thrown when chunk bytes are truncated, corrupt or of an unknown format version. */
export class CodecError extends Error {
  override readonly name = 'CodecError';
}
