import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import * as dm from '../../src/kernel/dm-ioctl-codec.js';
import * as lo from '../../src/kernel/loop-codec.js';
import { skipReason, tmpDir } from '../helpers/tmp.js';

// The codecs' offsets against the C compiler's view of the system's uapi
// headers (linux-libc-dev), when there is a compiler and the headers.

function unavailable(): string | undefined {
  for (const h of ['/usr/include/linux/dm-ioctl.h', '/usr/include/linux/loop.h']) if (!fs.existsSync(h)) return `${h} is missing (linux-libc-dev)`;
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'no C compiler (cc)';
  }
  return undefined;
}

const skip = skipReason(unavailable(), 'uapi layout check');
const tmp = tmpDir('remapsim-uapi-');
afterAll(() => tmp.cleanup());

const C = `
#include <stdio.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <linux/dm-ioctl.h>
#include <linux/loop.h>
#define O(s, f) printf(#s "." #f " %zu\\n", offsetof(struct s, f))
#define Z(s) printf("sizeof." #s " %zu\\n", sizeof(struct s))
#define V(n) printf(#n " %lu\\n", (unsigned long)(n))
int main(void) {
  Z(dm_ioctl); O(dm_ioctl, version); O(dm_ioctl, data_size); O(dm_ioctl, data_start); O(dm_ioctl, target_count);
  O(dm_ioctl, open_count); O(dm_ioctl, flags); O(dm_ioctl, event_nr); O(dm_ioctl, padding); O(dm_ioctl, dev);
  O(dm_ioctl, name); O(dm_ioctl, uuid); O(dm_ioctl, data);
  Z(dm_target_spec); O(dm_target_spec, sector_start); O(dm_target_spec, length); O(dm_target_spec, status);
  O(dm_target_spec, next); O(dm_target_spec, target_type);
  O(dm_name_list, dev); O(dm_name_list, next); O(dm_name_list, name);
  O(dm_target_versions, next); O(dm_target_versions, version); O(dm_target_versions, name);
  O(dm_target_deps, count); O(dm_target_deps, dev);
  O(dm_target_msg, sector); O(dm_target_msg, message);
  V(DM_VERSION); V(DM_REMOVE_ALL); V(DM_LIST_DEVICES); V(DM_DEV_CREATE); V(DM_DEV_REMOVE); V(DM_DEV_RENAME);
  V(DM_DEV_SUSPEND); V(DM_DEV_STATUS); V(DM_DEV_WAIT); V(DM_TABLE_LOAD); V(DM_TABLE_CLEAR); V(DM_TABLE_DEPS);
  V(DM_TABLE_STATUS); V(DM_LIST_VERSIONS); V(DM_TARGET_MSG); V(DM_DEV_SET_GEOMETRY);
  V(DM_READONLY_FLAG); V(DM_SUSPEND_FLAG); V(DM_PERSISTENT_DEV_FLAG); V(DM_STATUS_TABLE_FLAG);
  V(DM_ACTIVE_PRESENT_FLAG); V(DM_INACTIVE_PRESENT_FLAG); V(DM_BUFFER_FULL_FLAG); V(DM_SKIP_BDGET_FLAG);
  V(DM_SKIP_LOCKFS_FLAG); V(DM_NOFLUSH_FLAG); V(DM_QUERY_INACTIVE_TABLE_FLAG); V(DM_UEVENT_GENERATED_FLAG);
  V(DM_UUID_FLAG); V(DM_SECURE_DATA_FLAG); V(DM_DATA_OUT_FLAG); V(DM_DEFERRED_REMOVE);
  Z(loop_info64); O(loop_info64, lo_device); O(loop_info64, lo_inode); O(loop_info64, lo_rdevice);
  O(loop_info64, lo_offset); O(loop_info64, lo_sizelimit); O(loop_info64, lo_number); O(loop_info64, lo_encrypt_type);
  O(loop_info64, lo_encrypt_key_size); O(loop_info64, lo_flags); O(loop_info64, lo_file_name);
  O(loop_info64, lo_crypt_name); O(loop_info64, lo_encrypt_key); O(loop_info64, lo_init);
  Z(loop_config); O(loop_config, fd); O(loop_config, block_size); O(loop_config, info); O(loop_config, __reserved);
  V(LOOP_SET_FD); V(LOOP_CLR_FD); V(LOOP_SET_STATUS64); V(LOOP_GET_STATUS64); V(LOOP_SET_DIRECT_IO);
  V(LOOP_SET_BLOCK_SIZE); V(LOOP_CONFIGURE); V(LOOP_CTL_GET_FREE);
  V(LO_FLAGS_READ_ONLY); V(LO_FLAGS_AUTOCLEAR); V(LO_FLAGS_PARTSCAN); V(LO_FLAGS_DIRECT_IO);
  return 0;
}
`;

describe.skipIf(skip)('uapi layout', () => {
  it('matches what the C compiler makes of <linux/dm-ioctl.h> and <linux/loop.h>', () => {
    const src = path.join(tmp.dir, 'layout.c');
    const bin = path.join(tmp.dir, 'layout');
    fs.writeFileSync(src, C);
    execFileSync('cc', ['-o', bin, src]);
    const c = Object.fromEntries(
      execFileSync(bin, { encoding: 'utf8' })
        .trim()
        .split('\n')
        .map((l) => l.split(' '))
        .map(([k, v]) => [k, Number(v)]),
    );
    const D = dm.DM_IOCTL_OFFSETS;
    const T = dm.DM_TARGET_SPEC_OFFSETS;
    const ours: Record<string, number> = {
      'sizeof.dm_ioctl': dm.DM_IOCTL_SIZE,
      'dm_ioctl.version': D.version,
      'dm_ioctl.data_size': D.dataSize,
      'dm_ioctl.data_start': D.dataStart,
      'dm_ioctl.target_count': D.targetCount,
      'dm_ioctl.open_count': D.openCount,
      'dm_ioctl.flags': D.flags,
      'dm_ioctl.event_nr': D.eventNr,
      'dm_ioctl.padding': D.padding,
      'dm_ioctl.dev': D.dev,
      'dm_ioctl.name': D.name,
      'dm_ioctl.uuid': D.uuid,
      'dm_ioctl.data': dm.DM_MIN_DATA_SIZE,
      'sizeof.dm_target_spec': dm.DM_TARGET_SPEC_SIZE,
      'dm_target_spec.sector_start': T.sectorStart,
      'dm_target_spec.length': T.length,
      'dm_target_spec.status': T.status,
      'dm_target_spec.next': T.next,
      'dm_target_spec.target_type': T.targetType,
      'dm_name_list.dev': 0,
      'dm_name_list.next': 8,
      'dm_name_list.name': dm.DM_NAME_LIST_NAME_OFFSET,
      'dm_target_versions.next': 0,
      'dm_target_versions.version': 4,
      'dm_target_versions.name': dm.DM_TARGET_VERSIONS_NAME_OFFSET,
      'dm_target_deps.count': 0,
      'dm_target_deps.dev': dm.DM_TARGET_DEPS_DEV_OFFSET,
      'dm_target_msg.sector': 0,
      'dm_target_msg.message': dm.DM_TARGET_MSG_MESSAGE_OFFSET,
      DM_VERSION: dm.DM_VERSION,
      DM_REMOVE_ALL: dm.DM_REMOVE_ALL,
      DM_LIST_DEVICES: dm.DM_LIST_DEVICES,
      DM_DEV_CREATE: dm.DM_DEV_CREATE,
      DM_DEV_REMOVE: dm.DM_DEV_REMOVE,
      DM_DEV_RENAME: dm.DM_DEV_RENAME,
      DM_DEV_SUSPEND: dm.DM_DEV_SUSPEND,
      DM_DEV_STATUS: dm.DM_DEV_STATUS,
      DM_DEV_WAIT: dm.DM_DEV_WAIT,
      DM_TABLE_LOAD: dm.DM_TABLE_LOAD,
      DM_TABLE_CLEAR: dm.DM_TABLE_CLEAR,
      DM_TABLE_DEPS: dm.DM_TABLE_DEPS,
      DM_TABLE_STATUS: dm.DM_TABLE_STATUS,
      DM_LIST_VERSIONS: dm.DM_LIST_VERSIONS,
      DM_TARGET_MSG: dm.DM_TARGET_MSG,
      DM_DEV_SET_GEOMETRY: dm.DM_DEV_SET_GEOMETRY,
      DM_READONLY_FLAG: dm.DM_READONLY_FLAG,
      DM_SUSPEND_FLAG: dm.DM_SUSPEND_FLAG,
      DM_PERSISTENT_DEV_FLAG: dm.DM_PERSISTENT_DEV_FLAG,
      DM_STATUS_TABLE_FLAG: dm.DM_STATUS_TABLE_FLAG,
      DM_ACTIVE_PRESENT_FLAG: dm.DM_ACTIVE_PRESENT_FLAG,
      DM_INACTIVE_PRESENT_FLAG: dm.DM_INACTIVE_PRESENT_FLAG,
      DM_BUFFER_FULL_FLAG: dm.DM_BUFFER_FULL_FLAG,
      DM_SKIP_BDGET_FLAG: dm.DM_SKIP_BDGET_FLAG,
      DM_SKIP_LOCKFS_FLAG: dm.DM_SKIP_LOCKFS_FLAG,
      DM_NOFLUSH_FLAG: dm.DM_NOFLUSH_FLAG,
      DM_QUERY_INACTIVE_TABLE_FLAG: dm.DM_QUERY_INACTIVE_TABLE_FLAG,
      DM_UEVENT_GENERATED_FLAG: dm.DM_UEVENT_GENERATED_FLAG,
      DM_UUID_FLAG: dm.DM_UUID_FLAG,
      DM_SECURE_DATA_FLAG: dm.DM_SECURE_DATA_FLAG,
      DM_DATA_OUT_FLAG: dm.DM_DATA_OUT_FLAG,
      DM_DEFERRED_REMOVE: dm.DM_DEFERRED_REMOVE,
      'sizeof.loop_info64': lo.LOOP_INFO64_SIZE,
      'loop_info64.lo_device': lo.LOOP_INFO64_OFFSETS.device,
      'loop_info64.lo_inode': lo.LOOP_INFO64_OFFSETS.inode,
      'loop_info64.lo_rdevice': lo.LOOP_INFO64_OFFSETS.rdevice,
      'loop_info64.lo_offset': lo.LOOP_INFO64_OFFSETS.offset,
      'loop_info64.lo_sizelimit': lo.LOOP_INFO64_OFFSETS.sizeLimit,
      'loop_info64.lo_number': lo.LOOP_INFO64_OFFSETS.number,
      'loop_info64.lo_encrypt_type': lo.LOOP_INFO64_OFFSETS.encryptType,
      'loop_info64.lo_encrypt_key_size': lo.LOOP_INFO64_OFFSETS.encryptKeySize,
      'loop_info64.lo_flags': lo.LOOP_INFO64_OFFSETS.flags,
      'loop_info64.lo_file_name': lo.LOOP_INFO64_OFFSETS.fileName,
      'loop_info64.lo_crypt_name': lo.LOOP_INFO64_OFFSETS.cryptName,
      'loop_info64.lo_encrypt_key': lo.LOOP_INFO64_OFFSETS.encryptKey,
      'loop_info64.lo_init': lo.LOOP_INFO64_OFFSETS.init,
      'sizeof.loop_config': lo.LOOP_CONFIG_SIZE,
      'loop_config.fd': lo.LOOP_CONFIG_OFFSETS.fd,
      'loop_config.block_size': lo.LOOP_CONFIG_OFFSETS.blockSize,
      'loop_config.info': lo.LOOP_CONFIG_OFFSETS.info,
      'loop_config.__reserved': lo.LOOP_CONFIG_OFFSETS.reserved,
      LOOP_SET_FD: lo.LOOP_SET_FD,
      LOOP_CLR_FD: lo.LOOP_CLR_FD,
      LOOP_SET_STATUS64: lo.LOOP_SET_STATUS64,
      LOOP_GET_STATUS64: lo.LOOP_GET_STATUS64,
      LOOP_SET_DIRECT_IO: lo.LOOP_SET_DIRECT_IO,
      LOOP_SET_BLOCK_SIZE: lo.LOOP_SET_BLOCK_SIZE,
      LOOP_CONFIGURE: lo.LOOP_CONFIGURE,
      LOOP_CTL_GET_FREE: lo.LOOP_CTL_GET_FREE,
      LO_FLAGS_READ_ONLY: lo.LO_FLAGS_READ_ONLY,
      LO_FLAGS_AUTOCLEAR: lo.LO_FLAGS_AUTOCLEAR,
      LO_FLAGS_PARTSCAN: lo.LO_FLAGS_PARTSCAN,
      LO_FLAGS_DIRECT_IO: lo.LO_FLAGS_DIRECT_IO,
    };
    expect(ours).toEqual(c);
  });
});
