/**
 * Runs the status view on process.stdout, as `remapsim status` will: a model
 * in this process doing I/O between samples. Arguments: the view options
 * (--watch S --count N --format F). Used by watch.test.ts with stdout piped.
 */
import { MemoryDevice } from '../../src/block/memory-device.js';
import { DmRemapV4Target } from '../../src/remap/v4-target.js';
import { runStatusView } from '../../src/cli/status.js';
import { controlTargetSource } from '../../src/status/sources.js';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const t = new DmRemapV4Target({
  main: new MemoryDevice({ sectors: 8192, name: 'm' }),
  spare: new MemoryDevice({ sectors: 4096, name: 's' }),
  mainPath: '/dev/loop1',
  sparePath: '/dev/loop2',
});
const buf = new Uint8Array(4096);
let n = 0;
const io = setInterval(() => {
  for (let i = 0; i < 100; i++) t.read((n++ * 8) % 8000, buf);
}, 5);
await runStatusView(controlTargetSource(t, 'model'), { watch: opt('--watch'), count: opt('--count'), format: opt('--format') });
clearInterval(io);
