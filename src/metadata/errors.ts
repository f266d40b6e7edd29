/**
 * Errors of the metadata codecs.
 *
 * MetadataFormatError: the input BYTES are wrong (truncated, bad magic, bad
 * checksum, a field out of range, metadata of another device). Decoders throw
 * nothing else, whatever the bytes.
 *
 * MetadataValueError: a value handed to an ENCODER is out of range (a caller
 * bug or bad user input); the message names the field and the allowed range.
 */

import { RemapsimError } from '../util/errors.js';

export type MetadataFormatProblem =
  | 'truncated'
  | 'bad-magic'
  | 'bad-version'
  | 'bad-crc'
  | 'bad-field'
  | 'foreign-device'
  | 'unformatted'
  | 'no-valid-superblock'
  | 'inconsistent-copies'
  | 'checkpoint-lost';

export class MetadataFormatError extends RemapsimError {
  override readonly name = 'MetadataFormatError';
  constructor(
    readonly problem: MetadataFormatProblem,
    message: string,
  ) {
    super(message);
  }
}

export class MetadataValueError extends RemapsimError {
  override readonly name = 'MetadataValueError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}
