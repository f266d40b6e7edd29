import { describe, expect, it } from 'vitest';
import {
  decodeLoopConfig,
  decodeLoopInfo64,
  encodeLoopConfig,
  encodeLoopInfo64,
  LOOP_CONFIG_SIZE,
  LOOP_INFO64_SIZE,
  LO_FLAGS_AUTOCLEAR,
  LO_FLAGS_DIRECT_IO,
  LO_FLAGS_READ_ONLY,
} from '../../src/kernel/loop-codec.js';
import { hex, z } from './golden.js';

describe('struct loop_config / loop_info64', () => {
  it('LOOP_CONFIGURE argument, golden bytes', () => {
    const buf = encodeLoopConfig({
      fd: 5,
      blockSize: 4096,
      info: { offset: 4096, sizeLimit: 1 << 20, flags: LO_FLAGS_READ_ONLY | LO_FLAGS_DIRECT_IO, fileName: '/tmp/a.img' },
    });
    expect(buf.length).toBe(LOOP_CONFIG_SIZE);
    expect(buf).toEqual(
      hex(`
        05000000                   // fd 5
        00100000                   // block_size 4096
        // struct loop_info64 at 8
        0000000000000000           // lo_device
        0000000000000000           // lo_inode
        0000000000000000           // lo_rdevice
        0010000000000000           // lo_offset 4096
        0000100000000000           // lo_sizelimit 1 MiB
        00000000                   // lo_number
        00000000                   // lo_encrypt_type
        00000000                   // lo_encrypt_key_size
        11000000                   // lo_flags READ_ONLY | DIRECT_IO
        2f746d702f612e696d67 ${z(54)} // lo_file_name "/tmp/a.img"
        ${z(64)}                   // lo_crypt_name
        ${z(32)}                   // lo_encrypt_key
        ${z(16)}                   // lo_init[2]
        ${z(64)}                   // __reserved[8]
      `),
    );
    expect(decodeLoopConfig(buf)).toMatchObject({ fd: 5, blockSize: 4096, info: { offset: 4096, sizeLimit: 1 << 20, flags: 0x11, fileName: '/tmp/a.img' } });
  });

  it('decodes a LOOP_GET_STATUS64 reply laid out by hand', () => {
    const buf = hex(`
      0108000000000000             // lo_device 8:1
      3930000000000000             // lo_inode 12345
      0000000000000000
      0002000000000000             // offset 512
      0000000000000000
      03000000                     // lo_number 3
      00000000 00000000
      04000000                     // AUTOCLEAR
      2f782e696d67 ${z(58)}        // "/x.img"
      ${z(64)} ${z(32)} ${z(16)}
    `);
    expect(buf.length).toBe(LOOP_INFO64_SIZE);
    expect(decodeLoopInfo64(buf)).toEqual({
      device: 0x801,
      inode: 12345,
      rdevice: 0,
      offset: 512,
      sizeLimit: 0,
      number: 3,
      encryptType: 0,
      encryptKeySize: 0,
      flags: LO_FLAGS_AUTOCLEAR,
      fileName: '/x.img',
      cryptName: '',
    });
  });

  it('cuts lo_file_name to 63 bytes without splitting a character', () => {
    expect(decodeLoopInfo64(encodeLoopInfo64({ fileName: 'a'.repeat(100) })).fileName).toBe('a'.repeat(63));
    const name = `${'a'.repeat(62)}é`; // é is 2 bytes: it does not fit after 62 bytes
    expect(decodeLoopInfo64(encodeLoopInfo64({ fileName: name })).fileName).toBe('a'.repeat(62));
  });

  it('refuses flags LOOP_CONFIGURE does not take and values out of range', () => {
    expect(() => encodeLoopConfig({ fd: 1, blockSize: 0, info: { flags: 2 } })).toThrow(
      'loop flags 0x2 include bits LOOP_CONFIGURE does not accept (allowed: 0x1d)',
    );
    expect(() => encodeLoopInfo64({ offset: -1 })).toThrow(/offset must be an integer in 0\.\./);
    expect(() => encodeLoopConfig({ fd: -1, blockSize: 0, info: {} })).toThrow(/fd must be an integer in 0\.\.4294967295/);
  });
});
