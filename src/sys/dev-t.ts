/** glibc's dev_t encoding (makedev, major, minor): the numbers fs.Stats gives and mknod(2) takes. */
/**
 * glibc's makedev: the 64-bit dev_t with the major's low 12 bits at 8..19, the
 * minor's low 8 bits at 0..7 and its next 12 at 20..31 (high parts above 32).
 * For every number the kernel can hand out this equals new_encode_dev.
 */
export function glibcMakedev(major: number, minor: number): bigint {
  const M = BigInt(major);
  const m = BigInt(minor);
  return ((M & 0xfffn) << 8n) | ((M & ~0xfffn) << 32n) | (m & 0xffn) | ((m & ~0xffn) << 12n);
}

/** glibc's major()/minor() of a dev_t as fs.Stats.rdev gives it. */
export function glibcMajorMinor(rdev: number | bigint): { major: number; minor: number } {
  const d = BigInt(rdev);
  return {
    major: Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)),
    minor: Number((d & 0xffn) | ((d >> 12n) & ~0xffn)),
  };
}
