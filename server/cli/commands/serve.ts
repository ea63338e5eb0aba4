import cluster from 'node:cluster';
import { parseBytes } from '../../../config/units.js';
import type { Config } from '../../../config/load.js';
import { superviseWorkers } from '../../cluster/primary.js';
import { leavePrimary, reportReady } from '../../cluster/worker.js';
import type { Runtime } from '../../runtime.js';
import { startServer } from '../../serve.js';
import { bootstrapAdmin } from '../../services/auth.js';
import { recoverInterruptedDeletes } from '../../services/gc.js';
import { STRING, defineCommand, type CommandContext } from '../context.js';

export const serveCommand = defineCommand({
  summary: 'run the mirror (what npm start runs)',
  usage: 'goldmirror serve [--host HOST] [--port PORT] [--bandwidth-limit BYTES_PER_SEC] [--workers N|auto]',
  options: { host: STRING, port: STRING, 'bandwidth-limit': STRING, workers: STRING },
  arity: [0, 'serve takes no arguments'],
  async run(ctx, { values }) {
    const overrides: Record<string, unknown> = {};
    if (values.host !== undefined) overrides.host = values.host;
    if (values.port !== undefined) overrides.port = /^\d+$/.test(values.port) ? Number(values.port) : values.port;
    if (values['bandwidth-limit'] !== undefined) {
      overrides.maxBytesPerSec = parseBytes(values['bandwidth-limit']) ?? values['bandwidth-limit'];
    }
    if (values.workers !== undefined) overrides.workers = values.workers;
    const config = ctx.loadConfig(overrides);
    // A worker re-runs this command (cluster.fork runs the same argv) and serves; the primary only supervises.
    if (cluster.isWorker) return serveAsWorker(ctx, config);
    if (config.workers === 1) return serveInThisProcess(ctx, config);
    return superviseCluster(ctx, config);
  },
});

/** One process, no cluster: prepares the data dir, serves until SIGTERM/SIGINT, drains. */
async function serveInThisProcess(ctx: CommandContext, config: Config): Promise<number> {
  const runtime = await ctx.openRuntime(config, { verbose: true });
  await closingOnError(runtime, async () => {
    await prepareDataDir(runtime);
    await cleanUpAfterDeadProcesses(runtime);
  });
  return serveUntilSignal(runtime, { repeatedSignals: 'default' });
}

/**
 * The primary of `--workers N`: migrates the database and creates the first
 * admin once, before any worker opens it, then closes it and supervises.
 */
async function superviseCluster(ctx: CommandContext, config: Config): Promise<number> {
  const runtime = await ctx.openRuntime(config, { verbose: true });
  await closingOnError(runtime, () => prepareDataDir(runtime));
  await runtime.close();
  return superviseWorkers({
    workers: config.workers,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    log: runtime.log.child({ role: 'primary', pid: process.pid }),
  });
}

/** A worker of `--workers N`: serves like a single process, and stops when the primary signals it. */
async function serveAsWorker(ctx: CommandContext, config: Config): Promise<number> {
  try {
    const runtime = await ctx.openRuntime(config, { verbose: true });
    // Temp files and half-done deletes are claimed by PID, so a replacement worker clears those of the one that died.
    await closingOnError(runtime, () => cleanUpAfterDeadProcesses(runtime));
    // The primary drains every worker itself: a second signal (Ctrl-C reaches the whole process group) changes nothing.
    return await serveUntilSignal(runtime, { repeatedSignals: 'ignore' });
  } finally {
    leavePrimary();
  }
}

/** The first admin and its password, printed once. */
async function prepareDataDir(runtime: Runtime): Promise<void> {
  const { config, log } = runtime;
  const admin = await bootstrapAdmin(runtime, runtime.store.layout.root, config.adminPassword || undefined);
  if (admin.generatedPassword) {
    // Printed once, on stdout (logs may be shipped elsewhere); also kept in a 0600 file.
    process.stdout.write(
      `\nFirst start: created user "admin" with password\n\n    ${admin.generatedPassword}\n\n` +
        `It is also saved in ${admin.passwordFile} (readable only by this user). ` +
        'Sign in and change it, then delete that file.\n\n',
    );
  }
  if (admin.passwordIgnored) {
    log.info(
      'MIRROR_ADMIN_PASSWORD is set, but an admin exists: its password was left as it is (reset it with `goldmirror admin reset-password`)',
    );
  }
}

async function cleanUpAfterDeadProcesses(runtime: Runtime): Promise<void> {
  const { log } = runtime;
  // Best effort: a bucket policy without the list or abort permission must not keep the server from starting.
  const removed = await runtime.store.removeStaleTmpFiles().catch((err: unknown) => {
    log.warn({ err }, 'could not clear what interrupted ingests left; the next GC tries again');
    return [];
  });
  if (removed.length > 0) log.info({ removed }, 'removed temp files left by interrupted ingests');
  const deletes = await recoverInterruptedDeletes(runtime);
  if (deletes.restored.length + deletes.removed.length > 0)
    log.info(deletes, 'finished deletes left by interrupted processes');
}

/** Listens until SIGTERM/SIGINT, then lets running transfers finish (config.shutdownTimeoutMs) and closes. */
async function serveUntilSignal(runtime: Runtime, options: { repeatedSignals: 'default' | 'ignore' }): Promise<number> {
  const { config, log } = runtime;
  const handle = await closingOnError(runtime, () => startServer(runtime));
  log.info(
    {
      url: handle.url,
      host: config.host,
      port: config.port,
      dataDir: runtime.store.layout.root,
      blobs: runtime.store.location,
    },
    'goldmirror listening',
  );
  reportReady();

  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      log.info({ signal }, 'shutting down: waiting for running transfers');
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      if (options.repeatedSignals === 'ignore') {
        process.on('SIGTERM', ignore);
        process.on('SIGINT', ignore);
      }
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  await handle.close();
  await runtime.close();
  log.info('stopped');
  return 0;
}

function ignore(): void {}

/** Runs `fn`; if it throws, closes the runtime before passing the error on. */
async function closingOnError<T>(runtime: Runtime, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    await runtime.close();
    throw err;
  }
}
