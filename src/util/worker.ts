import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts a worker thread on a module given relative to the caller's
 * import.meta.url. From the built package the module is a .js file; when the
 * code runs from its TypeScript sources (tests, tsx) Node 20 cannot pass its
 * loader hooks to workers, so the worker first registers tsx itself (a dev
 * dependency, needed only in that case).
 */
export function startWorker(callerUrl: string, moduleBase: string, options: WorkerOptions = {}): Worker {
  const fromSource = callerUrl.endsWith('.ts');
  const url = new URL(`${moduleBase}${fromSource ? '.ts' : '.js'}`, callerUrl);
  if (!fromSource) return new Worker(url, options);
  const bootstrap = `import('tsx/esm/api').then((api) => { api.register(); return import(${JSON.stringify(url.href)}); })
    .catch((err) => { setImmediate(() => { throw err; }); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}
